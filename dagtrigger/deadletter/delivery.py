"""The raw delivery kept in a dead letter, and its parsing back into an ``Event`` for replay.

A replay must derive the same run id as the first delivery, so the stored request is parsed again by the very
parsers the entry points use (``events.from_*``), never by a copy of them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..events import IDEMPOTENCY_HEADERS, Event, from_cloud_event, from_push_envelope, from_webhook
from ..exceptions import BadDeadLetter

TRANSPORTS = ("cloudevent", "push", "webhook")
# Webhook headers worth keeping: what replay needs to derive the same run id. Everything else (Authorization,
# signatures, cookies) is dropped by this allow-list, never by a deny-list that could miss a new header.
SAFE_HEADERS = frozenset({"content-type", *(h.lower() for h in IDEMPOTENCY_HEADERS)})


@dataclass(frozen=True)
class Received:
    """The event as it arrived, kept so a replay parses it again exactly like the first delivery."""

    transport: str  # one of TRANSPORTS
    raw: Mapping[str, Any]
    attempts: int | None = None  # delivery attempts, when the transport says (Pub/Sub push deliveryAttempt)


def _jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (what will be stored); values JSON cannot hold become strings."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def received_cloud_event(attributes: Mapping[str, Any], data: Any) -> Received:
    """A CloudEvent: its attributes, and its data as JSON, or ``{"_base64": …}`` when it arrived as bytes."""
    if isinstance(data, (bytes, bytearray)):
        stored: Any = {"_base64": base64.b64encode(bytes(data)).decode("ascii")}
    else:
        stored = _jsonable(data)
    return Received("cloudevent", {"attributes": _jsonable(dict(attributes)), "data": stored})


def received_push(body: Mapping[str, Any]) -> Received:
    """A Pub/Sub push envelope, whole (message, subscription, deliveryAttempt)."""
    attempt = body.get("deliveryAttempt")
    attempts = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0 else None
    return Received("push", {"body": _jsonable(dict(body))}, attempts)


def received_webhook(body: bytes, headers: Mapping[str, str], path: str) -> Received:
    """A webhook request: the exact body bytes, the path, and only the headers in SAFE_HEADERS (never secrets)."""
    kept = {name.lower(): str(value) for name, value in headers.items() if name.lower() in SAFE_HEADERS}
    return Received(
        "webhook",
        {"body_base64": base64.b64encode(body).decode("ascii"), "headers": dict(sorted(kept.items())), "path": path},
    )


def event_from_delivery(received: Received) -> Event:
    """Parse the stored request again with the same parsers as the first delivery, so a replay gets the same run id.

    Raises BadDeadLetter for a delivery this code cannot turn back into a request, and BadEvent when the parsers
    reject it (as they would have the first time).
    """
    raw = received.raw
    transport = received.transport
    if transport == "cloudevent":
        attributes, data = raw.get("attributes"), raw.get("data")
        if not isinstance(attributes, Mapping):
            raise BadDeadLetter("dead letter raw.attributes must be an object")
        if isinstance(data, Mapping) and set(data) == {"_base64"}:
            data = _unbase64(data["_base64"], "raw.data._base64")
        return from_cloud_event(attributes, data)
    if transport == "push":
        body = raw.get("body")
        if not isinstance(body, Mapping):
            raise BadDeadLetter("dead letter raw.body must be an object")
        return from_push_envelope(body)
    if transport == "webhook":
        headers = raw.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise BadDeadLetter("dead letter raw.headers must be an object")
        body_bytes = _unbase64(raw.get("body_base64"), "raw.body_base64")
        return from_webhook(body_bytes, {str(k): str(v) for k, v in headers.items()}, str(raw.get("path") or "/"))
    raise BadDeadLetter(f"dead letter transport {transport!r} is not one of {', '.join(TRANSPORTS)}")


def _unbase64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadDeadLetter(f"dead letter {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadDeadLetter(f"dead letter {what} is not valid base64") from None
