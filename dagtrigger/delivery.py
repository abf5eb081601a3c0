"""The request as it arrived, carried on its ``Event`` so a dead letter can store it and a replay parse it again.

Owned by event parsing (events.py attaches one to every event it builds), so no entry point handles it. The stored
form — JSON, with bytes as base64 and only harmless headers — is built on first use, which is when a dead letter is
written: requests that never fail do not pay for the copy.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

TRANSPORTS = ("cloudevent", "push", "webhook")


@dataclass(frozen=True, eq=False)
class Delivery:
    """``transport`` (one of TRANSPORTS), ``attempts`` when the transport counts them (Pub/Sub push
    ``deliveryAttempt``), and ``raw``: the stored form, built once when first read."""

    transport: str
    attempts: int | None = None
    _build: Callable[[], Mapping[str, Any]] = field(default=dict, repr=False)

    @cached_property
    def raw(self) -> Mapping[str, Any]:
        return self._build()

    @classmethod
    def stored(cls, transport: str, raw: Mapping[str, Any], attempts: int | None = None) -> Delivery:
        """A delivery read back from a dead letter."""
        return cls(transport, attempts, lambda: raw)

    @classmethod
    def cloud_event(cls, attributes: Mapping[str, Any], data: Any) -> Delivery:
        """A CloudEvent: its attributes, and its data as JSON, or ``{"_base64": …}`` when it arrived as bytes."""
        attributes = dict(attributes)

        def build() -> Mapping[str, Any]:
            if isinstance(data, (bytes, bytearray)):
                stored: Any = {"_base64": base64.b64encode(bytes(data)).decode("ascii")}
            else:
                stored = _jsonable(data)
            return {"attributes": _jsonable(attributes), "data": stored}

        return cls("cloudevent", None, build)

    @classmethod
    def push(cls, body: Mapping[str, Any]) -> Delivery:
        """A Pub/Sub push body, whole (message, subscription, deliveryAttempt)."""
        attempt = body.get("deliveryAttempt")
        attempts = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0 else None
        return cls("push", attempts, lambda: {"body": _jsonable(dict(body))})

    @classmethod
    def webhook(
        cls, body: bytes, headers: Mapping[str, str], path: str, keep: frozenset[str], query: str = ""
    ) -> Delivery:
        """A webhook request: the exact body bytes, the path and query (signed: a replay verifies them again), and
        only the headers named in ``keep`` (lower case): an allow-list, so a credential in a header nobody thought
        of is never stored."""
        kept = {name.lower(): str(value) for name, value in headers.items() if name.lower() in keep}

        def build() -> Mapping[str, Any]:
            encoded = base64.b64encode(body).decode("ascii")
            stored = {"body_base64": encoded, "headers": dict(sorted(kept.items())), "path": path}
            return {**stored, "query": query} if query else stored

        return cls("webhook", None, build)


def _jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (what will be stored); values JSON cannot hold become strings."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))
