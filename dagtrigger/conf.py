"""Event → the default DAG-run ``conf`` and the template context routes see. Pure functions: no I/O, no clock.

(Run ids are made in run_id.py.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .events import NOT_JSON, Event, PubSubMessage
from .outcome import Outcome, OutcomeKind

RESERVED_KEY = "_event"


def _event_info(event: Event) -> dict[str, Any]:
    info: dict[str, Any] = {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": event.time,
    }
    if event.message is not None:
        msg = event.message
        info.update(
            message_id=msg.message_id,
            publish_time=msg.publish_time,
            attributes=dict(msg.attributes),
            ordering_key=msg.ordering_key,
            topic=msg.topic,
            subscription=msg.subscription,
        )
    if event.webhook is not None:
        info.update(idempotency_key=event.webhook.idempotency_key, body_sha256=event.webhook.body_sha256)
    info.update(event.extra)
    return info


def _message_payload(msg: PubSubMessage) -> dict[str, Any]:
    """JSON objects spread into the conf; other JSON under data_json; text under data_text; bytes as base64.

    Reads the message's JSON decoded once (``json_data``); the dict returned is always a fresh copy."""
    if msg.data is None:
        return {}
    value = msg.json_data
    if value is NOT_JSON:  # not JSON, or JSON Airflow cannot take (NaN, 1e999): the text itself, or the bytes
        try:
            return {"data_text": msg.data.decode("utf-8")}
        except UnicodeDecodeError:
            return {"data_base64": base64.b64encode(msg.data).decode("ascii")}
    if isinstance(value, dict):
        return dict(value)
    return {"data_json": value}


def build_conf(event: Event) -> dict[str, Any]:
    """The default conf: the payload users expect at the top level, event metadata under RESERVED_KEY."""
    conf: dict[str, Any]
    if event.storage is not None:
        conf = dict(event.storage.resource)
    elif event.message is not None:
        conf = _message_payload(event.message)
    elif event.webhook is not None:
        conf = dict(event.webhook.body)
    else:
        conf = {}
    conf[RESERVED_KEY] = _event_info(event)
    return conf


def conf_size(conf: dict[str, Any]) -> int:
    """Bytes of the conf as it goes on the wire (UTF-8 JSON). ValueError if it is not JSON (NaN, Infinity)."""
    return len(json.dumps(conf, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def refuse_conf(conf: dict[str, Any], max_bytes: int, sender_fault: bool) -> Outcome | None:
    """Why this conf must not be sent (not JSON: NaN, Infinity; over MAX_CONF_BYTES), as a permanent failure;
    None when it may go. Retrying cannot help either way. ``sender_fault``: the event, not the route, made it."""
    try:
        size = conf_size(conf)
    except ValueError as exc:
        return Outcome(OutcomeKind.FAILED, f"conf is not valid JSON ({exc}); not sent", sender_fault=sender_fault)
    if size > max_bytes:
        reason = f"conf is {size} bytes, over MAX_CONF_BYTES={max_bytes}; not sent"
        return Outcome(OutcomeKind.FAILED, reason, sender_fault=sender_fault)
    return None


def _message_value(msg: PubSubMessage) -> Any:
    payload = _message_payload(msg)
    for key in ("data_json", "data_text", "data_base64"):
        if key in payload and len(payload) == 1:
            return payload[key]
    return payload or None


@dataclass(frozen=True)
class EventDocuments:
    """The default conf and the template context of one event: built once per event and shared by every route
    it matches (read-only; copy before adding to them)."""

    conf: Mapping[str, Any]
    context: Mapping[str, Any]


def documents(event: Event) -> EventDocuments:
    conf = build_conf(event)
    return EventDocuments(conf, template_context(event, conf))


def template_context(event: Event, conf: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON document route templates see: plain data only, the same shape for direct and relayed events.

    ``conf``: the event's default conf when already built (see ``documents``)."""
    context: dict[str, Any] = {
        "kind": event.kind.value,
        "event": {**_event_info(event), "action": event.action},
        "conf": build_conf(event) if conf is None else conf,
    }
    if event.storage is not None:
        obj = event.storage
        folder = obj.name.rpartition("/")[0]
        context.update(
            object=dict(obj.resource),
            bucket=obj.bucket,
            name=obj.name,
            generation=obj.generation,
            folder=folder,
            uri=f"gs://{obj.bucket}/{obj.name}",
            folder_uri=f"gs://{obj.bucket}/{folder}/" if folder else f"gs://{obj.bucket}/",
            content_type=obj.resource.get("contentType"),
            metadata=obj.resource.get("metadata") or {},
        )
    if event.message is not None:
        msg = event.message
        value = _message_value(msg)
        context.update(
            message={
                "data": value,
                "attributes": dict(msg.attributes),
                "message_id": msg.message_id,
                "publish_time": msg.publish_time,
                "topic": msg.topic,
                "subscription": msg.subscription,
            },
            attributes=dict(msg.attributes),
        )
        if isinstance(value, dict):
            context["body"] = value
    if event.webhook is not None:
        context.update(body=dict(event.webhook.body), path=event.webhook.path)
    return context
