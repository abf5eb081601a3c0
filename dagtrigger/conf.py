"""Event → the DAG-run ``conf`` and a deterministic run id. Pure functions: no I/O, no clock.

The run id is what makes redelivery harmless: the same event always yields the same id, Airflow answers 409 to the
second POST, and that counts as done. It is derived from what identifies the *thing* (the object version, the
message), not from the delivery, because Cloud Storage may re-send one object version under a new event id.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from .events import Event, Kind, parse_json
from .exceptions import BadEvent

RESERVED_KEY = "_event"
RUN_ID_MAX = 250
# Airflow accepts ^[A-Za-z0-9_.~:+-]+$; we emit a stricter subset that both majors and URLs handle plainly.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")  # always fullmatch: `$` would accept a trailing newline
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_CHARS = 12
_PROJECT = re.compile(r"(?:^|/)projects/([^/]+)/")


def _readable(text: str, limit: int, keep_tail: bool = False) -> str:
    """Squash a string into run-id characters; long names keep their tail, which holds the file name."""
    safe = _UNSAFE.sub("_", text).strip("_.") or "x"
    if len(safe) <= limit:
        return safe
    cut = safe[-limit:].lstrip("_.") if keep_tail else safe[:limit].rstrip("_.")
    return cut or "x"


def _digest(*parts: str | None) -> str:
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def _compose(prefix: str, readable: list[tuple[str, int, bool]], digest: str) -> str:
    """prefix__part__part__digest, each part squashed to its budget; total stays within RUN_ID_MAX."""
    pieces = [prefix] + [_readable(text, limit, tail) for text, limit, tail in readable] + [digest]
    return "__".join(pieces)  # the budgets above keep this within RUN_ID_MAX


def run_id_for(event: Event, salt: str | None = None) -> str:
    """Deterministic, readable, unique per object version / message / webhook key; always matches RUN_ID_PATTERN.

    ``salt`` (a route name) separates the runs of two routes that trigger the same DAG for one event.
    """
    if salt:
        return _salted(run_id_for(event), salt)
    if event.kind is Kind.STORAGE and event.storage is not None:
        obj = event.storage
        action = event.action or "object"
        meta = obj.metageneration if action == "metadataUpdated" else None
        digest = _digest("gcs", event.type, obj.bucket, obj.name, obj.generation, meta)
        generation = obj.generation + (f"m{meta}" if meta else "")
        parts = [(obj.bucket, 63, False), (obj.name, 120, True), (generation, 24, False)]
        return _compose(f"gcs_{action}", parts, digest)
    if event.kind is Kind.PUBSUB and event.message is not None:
        # One message, one run, whatever the transport: Eventarc names the topic and a push subscription only
        # itself, but both carry the project and the message id (which Pub/Sub keeps across redeliveries).
        msg = event.message
        project = _project(event.source) or _project(msg.subscription) or "pubsub"
        digest = _digest("pubsub", project, msg.message_id)
        return _compose("pubsub", [(project, 80, False), (msg.message_id, 100, False)], digest)
    if event.kind is Kind.WEBHOOK and event.webhook is not None:
        hook = event.webhook
        key = hook.idempotency_key
        # Not the path: it is not signed by every scheme, and one key names one operation whatever URL carried it.
        digest = _digest("webhook", key or hook.body_sha256)
        return _compose("webhook", [(key or "body", 120, False)], digest)
    return _compose("event", [(event.type, 80, False), (event.id, 100, False)], _digest(event.type, event.id))


def _project(name: str | None) -> str | None:
    """The project of ``//pubsub.googleapis.com/projects/P/topics/T`` or ``projects/P/subscriptions/S``."""
    match = _PROJECT.search(name or "")
    return match.group(1) if match else None


def _salted(run_id: str, salt: str) -> str:
    head, _, digest = run_id.rpartition("__")
    return f"{head[: RUN_ID_MAX - 80]}__{_readable(salt, 64)}__{_digest(digest, salt)}"


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


def _message_payload(data: bytes | None) -> dict[str, Any]:
    """JSON objects spread into the conf; other JSON under data_json; text under data_text; bytes as base64."""
    if data is None:
        return {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(data).decode("ascii")}
    try:
        value = parse_json(text, "message data")
    except BadEvent:  # not JSON, or JSON Airflow cannot take (NaN, 1e999): the text itself
        return {"data_text": text}
    if isinstance(value, dict):
        return value
    return {"data_json": value}


def build_conf(event: Event) -> dict[str, Any]:
    """The default conf: the payload users expect at the top level, event metadata under RESERVED_KEY."""
    conf: dict[str, Any]
    if event.storage is not None:
        conf = dict(event.storage.resource)
    elif event.message is not None:
        conf = _message_payload(event.message.data)
    elif event.webhook is not None:
        conf = dict(event.webhook.body)
    else:
        conf = {}
    conf[RESERVED_KEY] = _event_info(event)
    return conf


def conf_size(conf: dict[str, Any]) -> int:
    """Bytes of the conf as it goes on the wire (UTF-8 JSON). ValueError if it is not JSON (NaN, Infinity)."""
    return len(json.dumps(conf, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))


def _message_value(data: bytes | None) -> Any:
    payload = _message_payload(data)
    for key in ("data_json", "data_text", "data_base64"):
        if key in payload and len(payload) == 1:
            return payload[key]
    return payload or None


def template_context(event: Event) -> dict[str, Any]:
    """The JSON document route templates see: plain data only, the same shape for direct and relayed events."""
    context: dict[str, Any] = {
        "kind": event.kind.value,
        "event": {**_event_info(event), "action": event.action},
        "conf": build_conf(event),
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
        context.update(
            message={
                "data": _message_value(msg.data),
                "attributes": dict(msg.attributes),
                "message_id": msg.message_id,
                "publish_time": msg.publish_time,
                "topic": msg.topic,
                "subscription": msg.subscription,
            },
            attributes=dict(msg.attributes),
        )
        value = _message_value(msg.data)
        if isinstance(value, dict):
            context["body"] = value
    if event.webhook is not None:
        context.update(body=dict(event.webhook.body), path=event.webhook.path)
    return context
