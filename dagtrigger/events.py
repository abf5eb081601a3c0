"""CloudEvent, Pub/Sub push envelope or webhook request → one frozen ``Event``.

Parsing is strict about what identifies an event (bucket, object name and generation; Pub/Sub message id) because
the run id is derived from it, and lenient about everything else: unknown fields are kept, never rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import unquote

from . import storage_events
from .delivery import TRANSPORTS, Delivery
from .exceptions import BadDeadLetter, BadEvent
from .settings import is_dag_id
from .storage_events import NO_CHANNELS, Channels
from .strict_json import check_json_value, parse_json

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
WEBHOOK_TYPE = "dagtrigger.webhook.v1.received"

# CloudEvent type → storage action (the suffix Cloud Storage uses, and what STORAGE_EVENT_TYPES names).
STORAGE_TYPES: Mapping[str, str] = storage_events.TYPES

# Cloud Storage Pub/Sub notifications (attribute eventType) → the CloudEvent type of the same change.
NOTIFICATION_TYPES: Mapping[str, str] = {
    name: storage_events.cloud_event_type(action) for name, action in storage_events.NOTIFICATION_ACTIONS.items()
}
# The first one present is the key. webhook-id comes first: Standard Webhooks sign it, so it cannot be swapped.
IDEMPOTENCY_HEADERS = ("webhook-id", "Idempotency-Key", "X-Idempotency-Key", "X-Request-Id")
# Webhook headers a dead letter keeps: what a replay needs to derive the same run id and to verify the request again
# (our two schemes' signatures and timestamps: HMAC results, not secrets). Everything else (Authorization, cookies,
# other signatures) is dropped by this allow-list, never by a deny-list that could miss one.
PROOF_HEADERS = ("x-dagtrigger-signature", "webhook-timestamp", "webhook-signature")
SAFE_HEADERS = frozenset({"content-type", *(h.lower() for h in IDEMPOTENCY_HEADERS), *PROOF_HEADERS})
NOT_JSON: Any = object()  # PubSubMessage.json_data of data that is absent or not JSON
MAX_IDENTITY_CHARS = 2048  # GCS names are up to 1,024 bytes; subjects add "objects/"


class EventKind(Enum):
    STORAGE = "storage"
    PUBSUB = "pubsub"
    WEBHOOK = "webhook"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class StorageObject:
    """The Cloud Storage object an event is about: its identity and its resource as delivered."""

    bucket: str
    name: str
    generation: str
    metageneration: str | None
    resource: Mapping[str, Any]


@dataclass(frozen=True)
class PubSubMessage:
    """A Pub/Sub message as delivered: id, data, attributes and where it came through."""

    message_id: str
    data: bytes | None
    attributes: Mapping[str, str]
    publish_time: str | None
    ordering_key: str | None
    topic: str | None
    subscription: str | None
    # ``data`` as strict JSON (see parse_json), or NOT_JSON: decoded once, here, for the notification check,
    # routing, the conf and the templates (it was decoded up to five times per event).
    json_data: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "json_data", _json_or_not(self.data))


@dataclass(frozen=True)
class Webhook:
    """A webhook request: its parsed body, what identifies it (idempotency key, body hash, path), the DAG it names
    and the routes its signature proves."""

    body: Mapping[str, Any]
    idempotency_key: str | None
    body_sha256: str
    path: str
    requested_dag: str | None = None  # from a /dags/<dag_id> path; allowed only if a route lists it
    # Routes the sender proved it may use (the routes whose secret verified the signature); None: any route
    # (WEBHOOK_AUTH=cloud-run-iam, where Cloud Run's IAM check has authenticated the caller).
    authenticated_routes: frozenset[str] | None = None


@dataclass(frozen=True)
class Event:
    """The one shape every transport is turned into; later stages never see a transport."""

    kind: EventKind
    id: str
    type: str
    source: str
    subject: str | None = None
    time: str | None = None
    storage: StorageObject | None = None
    message: PubSubMessage | None = None
    webhook: Webhook | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # The request as it arrived (for a dead letter and its replay); not part of what the event is.
    delivery: Delivery | None = field(default=None, compare=False, repr=False)

    @property
    def action(self) -> str | None:
        """The storage action (finalized, deleted, …) or None for other kinds."""
        return STORAGE_TYPES.get(self.type)


def _checked_text(value: Any, what: str, required: bool = True) -> str | None:
    """An identity field as text, or BadEvent naming it (missing when required, not a string, too long)."""
    if value is None or value == "":
        if required:
            raise BadEvent(f"{what} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadEvent(f"{what} must be a string, got {type(value).__name__}")
    text = str(value)
    if len(text) > MAX_IDENTITY_CHARS:
        raise BadEvent(f"{what} is longer than {MAX_IDENTITY_CHARS} characters")
    return text


def _json_or_not(data: bytes | None) -> Any:
    if data is None:
        return NOT_JSON
    try:
        return parse_json(data, "message data")
    except BadEvent:
        return NOT_JSON


def _json_object(data: Any, what: str) -> Mapping[str, Any]:
    if isinstance(data, (bytes, bytearray)):
        data = parse_json(bytes(data), what)
    else:
        check_json_value(data, what)
    if not isinstance(data, Mapping):
        raise BadEvent(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _storage(data: Any, attrs: Mapping[str, Any]) -> StorageObject:
    resource = _json_object(data, "storage event data")
    source = str(attrs.get("source") or "")
    bucket = resource.get("bucket") or attrs.get("bucket") or source.rpartition("/buckets/")[2] or None
    subject = str(attrs.get("subject") or "")
    name = resource.get("name") or (subject[len("objects/") :] if subject.startswith("objects/") else None)
    return StorageObject(
        bucket=_checked_text(bucket, "data.bucket") or "",
        name=_checked_text(name, "data.name") or "",
        generation=_checked_text(resource.get("generation"), "data.generation") or "",
        metageneration=_checked_text(resource.get("metageneration"), "data.metageneration", required=False),
        resource=resource,
    )


def _decode_base64(raw: Any) -> bytes | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise BadEvent("message.data must be a base64 string")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        try:  # Some publishers use the URL-safe alphabet.
            return base64.urlsafe_b64decode(raw)
        except (binascii.Error, ValueError):
            raise BadEvent("message.data is not valid base64") from None


def _attributes(raw: Any) -> Mapping[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise BadEvent("message.attributes must be an object of strings")
    return {str(k): str(v) for k, v in raw.items()}


def _pubsub_message(envelope: Mapping[str, Any], topic: str | None, fallback_id: str | None) -> PubSubMessage:
    message = envelope.get("message")
    if not isinstance(message, Mapping):
        raise BadEvent("Pub/Sub data has no 'message' object")
    message_id = message.get("messageId") or message.get("message_id") or fallback_id
    subscription = envelope.get("subscription")
    return PubSubMessage(
        message_id=_checked_text(message_id, "message.messageId") or "",
        data=_decode_base64(message.get("data")),
        attributes=_attributes(message.get("attributes")),
        publish_time=_checked_text(message.get("publishTime") or message.get("publish_time"), "publishTime", False),
        ordering_key=_checked_text(message.get("orderingKey") or message.get("ordering_key"), "orderingKey", False),
        topic=topic,
        subscription=_checked_text(subscription, "subscription", required=False),
    )


def _topic_from_source(source: str) -> str | None:
    _, marker, topic = source.partition("/topics/")
    return (topic or None) if marker else None


def _topic_path(source: str) -> str:
    """``projects/P/topics/T`` of an Eventarc Pub/Sub source ``//pubsub.googleapis.com/projects/P/topics/T``."""
    return source.removeprefix("//pubsub.googleapis.com/")


def from_cloud_event(attrs: Mapping[str, Any], data: Any, channels: Channels = NO_CHANNELS) -> Event:
    """Build an Event from CloudEvent attributes (id, type, source, subject, time, extensions) and its data.

    ``channels``: where Cloud Storage notifications may be relayed from (see ``Channels``); elsewhere a message that
    looks like one stays a Pub/Sub message."""
    return replace(_cloud_event(attrs, data, channels), delivery=Delivery.cloud_event(attrs, data))


def _cloud_event(attrs: Mapping[str, Any], data: Any, channels: Channels) -> Event:
    ce_id = _checked_text(attrs.get("id"), "CloudEvent id") or ""
    ce_type = _checked_text(attrs.get("type"), "CloudEvent type") or ""
    source = _checked_text(attrs.get("source"), "CloudEvent source") or ""
    common: dict[str, Any] = {
        "id": ce_id,
        "type": ce_type,
        "source": source,
        "subject": _checked_text(attrs.get("subject"), "subject", required=False),
        "time": _checked_text(attrs.get("time"), "time", required=False),
    }
    if ce_type in STORAGE_TYPES:
        return Event(kind=EventKind.STORAGE, storage=_storage(data, attrs), **common)
    if ce_type == PUBSUB_TYPE:
        envelope = _json_object(data, "Pub/Sub event data")
        message = _pubsub_message(envelope, _topic_from_source(source), fallback_id=ce_id)
        relayed = _storage_notification(message, _topic_path(source), channels)
        return relayed or Event(kind=EventKind.PUBSUB, message=message, **common)
    return Event(kind=EventKind.UNSUPPORTED, **common)


def _storage_notification(message: PubSubMessage, channel: str, channels: Channels) -> Event | None:
    """A Cloud Storage notification that came through Pub/Sub, as the storage event it describes; None when the
    message is not one we may take as such: any publisher can set these attributes, so only a message that arrived
    through the channel declared for its bucket (``channels``) speaks for Cloud Storage, and only when its attributes
    and JSON payload name the same object version.

    Same object version → same run id as the direct Eventarc event, so the two paths never double a run.
    """
    attrs = message.attributes
    ce_type = NOTIFICATION_TYPES.get(attrs.get("eventType", ""))
    bucket, name = attrs.get("bucketId"), attrs.get("objectId")
    if ce_type is None or not bucket or not name or (bucket, channel) not in channels:
        return None
    resource: Mapping[str, Any] = {}
    if attrs.get("payloadFormat", "JSON_API_V1") == "JSON_API_V1" and isinstance(message.json_data, dict):
        resource = message.json_data
    generation = attrs.get("objectGeneration") or ""
    for key, value in (("bucket", bucket), ("name", name), ("generation", generation)):
        stated = resource.get(key)
        if value and stated not in (None, "") and str(stated) != value:
            return None  # the payload names another object than the attributes: not what Cloud Storage sends
    resource = {
        **resource,
        "bucket": bucket,
        "name": name,
        "generation": str(resource.get("generation") or generation),
    }
    obj = _storage(resource, {})
    return Event(
        kind=EventKind.STORAGE,
        id=message.message_id,
        type=ce_type,
        source=f"//storage.googleapis.com/projects/_/buckets/{obj.bucket}",
        subject=f"objects/{obj.name}",
        time=attrs.get("eventTime") or message.publish_time,
        storage=obj,
        extra={"via": "pubsub", "message_id": message.message_id, "subscription": message.subscription or ""},
    )


def from_push_envelope(raw_body: bytes | Mapping[str, Any], channels: Channels = NO_CHANNELS) -> Event:
    """A Pub/Sub push subscription's POST body: ``{"message": {...}, "subscription": "projects/…"}``.

    Only for the push entry point, after the subscription's OIDC token was verified: the transport decides the
    event kind, never the body's shape; ``channels`` as for ``from_cloud_event``."""
    body = _json_object(raw_body, "Pub/Sub push body")
    message = _pubsub_message(body, topic=None, fallback_id=None)
    delivery = Delivery.push(body)
    notification = _storage_notification(message, message.subscription or "", channels)
    if notification is not None:
        return replace(notification, delivery=delivery)
    return Event(
        kind=EventKind.PUBSUB,
        id=message.message_id,
        type=PUBSUB_TYPE,
        source=f"//pubsub.googleapis.com/{message.subscription or ''}",
        time=message.publish_time,
        message=message,
        delivery=delivery,
    )


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The sender's idempotency key: the first of IDEMPOTENCY_HEADERS present (signatures cover this value)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    key = next((lowered[h.lower()] for h in IDEMPOTENCY_HEADERS if lowered.get(h.lower())), None)
    return _checked_text(key, "Idempotency-Key", required=False)


def from_webhook(
    raw_body: bytes,
    headers: Mapping[str, str],
    path: str,
    authenticated_routes: frozenset[str] | None = None,
    query: str = "",
) -> Event:
    """A JSON object body becomes the event; an idempotency header (or the body's hash) identifies it.

    Never a Pub/Sub or storage event, whatever the body looks like: a webhook sender cannot speak for Google."""
    body = _json_object(raw_body, "request body")
    digest = hashlib.sha256(raw_body).hexdigest()
    key = idempotency_key(headers)
    return Event(
        kind=EventKind.WEBHOOK,
        id=key or f"sha256:{digest}",
        type=WEBHOOK_TYPE,
        source=path or "/",
        time=signed_time(headers),
        webhook=Webhook(
            body=body,
            idempotency_key=key,
            body_sha256=digest,
            path=path or "/",
            requested_dag=requested_dag(path),
            authenticated_routes=authenticated_routes,
        ),
        delivery=Delivery.webhook(raw_body, headers, path, SAFE_HEADERS, query),
    )


_SIGNED_T = re.compile(r"(?:^|,)\s*t=([0-9]{1,12})\s*(?:,|$)")


def signed_time(headers: Mapping[str, str]) -> str | None:
    """When the sender signed the request: ``webhook-timestamp`` or the ``t=`` of ``X-Dagtrigger-Signature`` (both
    covered by the signature, checked before this event is built), as ISO-8601 UTC; None without one. A webhook's
    time places it in a batch window: the signed one, so a replayed capture lands in the window of the original."""
    lowered = {name.lower(): value for name, value in headers.items()}
    text = lowered.get("webhook-timestamp", "")
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        found = _SIGNED_T.search(lowered.get("x-dagtrigger-signature", ""))
        text = found.group(1) if found else ""
    if not text:
        return None
    try:
        return datetime.fromtimestamp(int(text), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


def requested_dag(path: str) -> str | None:
    """``…/dags/<dag_id>`` names a DAG; a name that cannot be a DAG id is a 404, before any routing."""
    parts = [p for p in (path or "").split("/") if p]
    if len(parts) < 2 or parts[-2] != "dags":
        return None
    dag_id = unquote(parts[-1])
    if not is_dag_id(dag_id):
        raise BadEvent(f"no such DAG {dag_id[:100]!r}", 404)
    return dag_id


def from_delivery(delivery: Delivery, channels: Channels = NO_CHANNELS) -> Event:
    """A stored delivery (a dead letter's), parsed again by the same parsers as the first time, so a replay gets
    the same event and run id. Raises BadDeadLetter when it cannot be turned back into a request, and BadEvent when
    the parsers reject it (as they would have the first time)."""
    raw = delivery.raw
    if delivery.transport == "cloudevent":
        attributes, data = raw.get("attributes"), raw.get("data")
        if not isinstance(attributes, Mapping):
            raise BadDeadLetter("dead letter raw.attributes must be an object")
        if isinstance(data, Mapping) and set(data) == {"_base64"}:
            data = _unbase64(data["_base64"], "raw.data._base64")
        event = _cloud_event(attributes, data, channels)
    elif delivery.transport == "push":
        body = raw.get("body")
        if not isinstance(body, Mapping):
            raise BadDeadLetter("dead letter raw.body must be an object")
        event = from_push_envelope(body, channels)
    elif delivery.transport == "webhook":
        headers = raw.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise BadDeadLetter("dead letter raw.headers must be an object")
        body_bytes = _unbase64(raw.get("body_base64"), "raw.body_base64")
        path, query = str(raw.get("path") or "/"), str(raw.get("query") or "")
        event = from_webhook(body_bytes, {str(k): str(v) for k, v in headers.items()}, path, query=query)
    else:
        raise BadDeadLetter(f"dead letter transport {delivery.transport!r} is not one of {', '.join(TRANSPORTS)}")
    return replace(event, delivery=delivery)


def _unbase64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadDeadLetter(f"dead letter {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadDeadLetter(f"dead letter {what} is not valid base64") from None
