"""A message pulled from an Eventarc trigger's dead-letter topic → the CloudEvent it carried. Pure: no I/O.

What such a message is (docs/accounting.md#what-a-dead-lettered-event-looks-like has the sources): Pub/Sub forwards
an undeliverable message to the dead-letter topic as a *new* message (new id, new publish time) with the original
data and attributes, plus the ``CloudPubSubDeadLetter*`` attributes naming the subscription it came from. What the
original was depends on the trigger:

- a **Cloud Storage** trigger's transport topic carries the event as a CloudEvent in Google's Pub/Sub binding: binary
  mode (``ce-id``, ``ce-type``, ``ce-source``, ``ce-subject``, ``ce-time``, ``ce-bucket`` … as attributes, the object
  resource as JSON data), or structured mode (``content-type: application/cloudevents+json``, the whole event as
  data); the ``ce-id`` is the live event's id. A Cloud Storage notification (``eventType``, ``bucketId``,
  ``objectId``, ``objectGeneration``, ``payloadFormat`` attributes, the resource as data) is read too: the Cloud
  Storage service agent publishes to the transport topic, and that is its documented message format.
- a **Pub/Sub-source** trigger subscribes to your topic, so the message is your message as published; the trigger's
  topic is not in it (the operator names it), and its original message id is gone: ``id_reconstructed`` says so, and
  the drain then keeps only routes whose run id does not depend on it.

Anything else is refused (``NotCarried``), never guessed at.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..events import NOTIFICATION_TYPES, PUBSUB_TYPE
from ..exceptions import DagtriggerError

DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"
SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
SOURCE_PROJECT = "CloudPubSubDeadLetterSourceSubscriptionProject"
SOURCE_DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
SOURCE_PUBLISH_TIME = "CloudPubSubDeadLetterSourceTopicPublishTime"
STRUCTURED_TYPE = "application/cloudevents"
_CE_REQUIRED = ("id", "type", "source", "specversion")


class NotCarried(DagtriggerError, ValueError):
    """The message is not a dead-lettered event this drain can rebuild; the reason says why (it is left unacked).
    No key: the reason is the whole message, shown beside the message id."""

    key = ""


@dataclass(frozen=True)
class Pulled:
    """One message as the Pub/Sub REST API's ``pull`` returns it (``receivedMessages[]``), data decoded."""

    ack_id: str
    message_id: str
    data: bytes
    attributes: Mapping[str, str]
    publish_time: str | None = None
    ordering_key: str | None = None
    delivery_attempt: int | None = None

    @classmethod
    def from_rest(cls, received: Mapping[str, Any]) -> Pulled:
        """``{"ackId", "message": {"data", "attributes", "messageId", "publishTime", "orderingKey"}, …}``;
        NotCarried when it lacks an ack id or message id, or its data is not base64."""
        message = received.get("message")
        ack_id = received.get("ackId")
        if not isinstance(message, Mapping) or not isinstance(ack_id, str) or not ack_id:
            raise NotCarried("the pull answer holds a message without ackId or message")
        message_id = message.get("messageId") or message.get("message_id")
        if not isinstance(message_id, str) or not message_id:
            raise NotCarried("the message has no messageId")
        raw = message.get("data") or ""
        try:
            data = base64.b64decode(raw, validate=True) if isinstance(raw, str) else b""
        except (binascii.Error, ValueError):
            raise NotCarried("the message data is not base64") from None
        attributes = message.get("attributes") or {}
        attempt = received.get("deliveryAttempt")
        return cls(
            ack_id=ack_id,
            message_id=message_id,
            data=data,
            attributes={str(k): str(v) for k, v in attributes.items()} if isinstance(attributes, Mapping) else {},
            publish_time=_text(message.get("publishTime")),
            ordering_key=_text(message.get("orderingKey")),
            delivery_attempt=attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None,
        )


@dataclass(frozen=True)
class Carried:
    """The CloudEvent a dead-lettered message carried: attributes (``id``, ``type``, ``source`` … without the
    ``ce-`` prefix) and data (bytes, or the parsed JSON of a structured event), as ``events.from_cloud_event``
    takes them. ``shape`` names the form it came in; ``id_reconstructed``: the event id is the dead-letter
    message's, not the live event's (the original id is not in the message)."""

    attributes: dict[str, Any]
    data: Any
    shape: str
    source_subscription: str | None
    delivery_count: int | None
    id_reconstructed: bool = False


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def source_subscription(attributes: Mapping[str, str]) -> str | None:
    """``projects/P/subscriptions/S`` the message was forwarded from (Pub/Sub gives the id and the project apart);
    None for a message Pub/Sub's dead lettering did not forward."""
    name = attributes.get(SOURCE_SUBSCRIPTION, "")
    if not name:
        return None
    if name.startswith("projects/"):
        return name
    project = attributes.get(SOURCE_PROJECT, "")
    return f"projects/{project}/subscriptions/{name}" if project else None


def _count(attributes: Mapping[str, str]) -> int | None:
    text = attributes.get(SOURCE_DELIVERY_COUNT, "")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def unwrap(message: Pulled, topic: str | None = None) -> Carried:
    """The CloudEvent ``message`` carried; ``topic`` (``projects/P/topics/T``): the Pub/Sub-source trigger's topic,
    needed only for plain messages. Raises NotCarried."""
    forwarded_from = source_subscription(message.attributes)
    if forwarded_from is None:
        raise NotCarried(f"no {SOURCE_SUBSCRIPTION} attribute: Pub/Sub's dead lettering did not forward this message")
    attributes = {k: v for k, v in message.attributes.items() if not k.startswith(DEAD_LETTER_PREFIX)}
    lowered = {k.lower(): v for k, v in attributes.items()}
    count = _count(message.attributes)
    content_type = lowered.get("content-type", "")
    if content_type.lower().startswith(STRUCTURED_TYPE):
        attrs, data = _structured(message.data, content_type)
        return Carried(attrs, data, "structured", forwarded_from, count)
    if any(key.startswith("ce-") for key in lowered):
        ce = {key[3:]: value for key, value in lowered.items() if key.startswith("ce-")}
        missing = [name for name in _CE_REQUIRED if not ce.get(name)]
        if missing:
            raise NotCarried(f"a binary-mode CloudEvent without {', '.join('ce-' + m for m in missing)}")
        if content_type and "datacontenttype" not in ce:
            ce["datacontenttype"] = content_type
        return Carried(ce, message.data, "binary", forwarded_from, count)
    if "eventType" in attributes and "bucketId" in attributes and "objectId" in attributes:
        attrs, data = _notification(message, attributes)
        return Carried(attrs, data, "notification", forwarded_from, count, id_reconstructed=True)
    if topic is None:
        raise NotCarried("a plain Pub/Sub message (no CloudEvent attributes): name the trigger's topic (--topic)")
    attrs, data = _published(message, attributes, topic, forwarded_from)
    return Carried(attrs, data, "pubsub", forwarded_from, count, id_reconstructed=True)


def _structured(data: bytes, content_type: str) -> tuple[dict[str, Any], Any]:
    if not content_type.lower().startswith(STRUCTURED_TYPE + "+json"):
        raise NotCarried(f"a structured CloudEvent in {content_type[:60]!r}: only JSON is read")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise NotCarried("a structured CloudEvent whose data is not JSON") from None
    if not isinstance(document, dict) or any(not document.get(name) for name in _CE_REQUIRED):
        raise NotCarried("a structured CloudEvent without id, type, source and specversion")
    attributes = {k: v for k, v in document.items() if k not in ("data", "data_base64")}
    if "data_base64" in document:
        try:
            return attributes, base64.b64decode(str(document["data_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise NotCarried("a structured CloudEvent whose data_base64 is not base64") from None
    return attributes, document.get("data")


def _notification(message: Pulled, attributes: Mapping[str, str]) -> tuple[dict[str, Any], Any]:
    """A Cloud Storage Pub/Sub notification as the storage CloudEvent Eventarc delivers for it (same object version:
    the same run id); the payload must name the object the attributes name."""
    ce_type = NOTIFICATION_TYPES.get(attributes["eventType"])
    if ce_type is None:
        raise NotCarried(f"a Cloud Storage notification of unknown eventType {attributes['eventType'][:60]!r}")
    bucket, name = attributes["bucketId"], attributes["objectId"]
    generation = attributes.get("objectGeneration", "")
    resource: dict[str, Any] = {}
    if attributes.get("payloadFormat", "JSON_API_V1") == "JSON_API_V1":
        try:
            parsed = json.loads(message.data) if message.data else {}
        except (UnicodeDecodeError, ValueError):
            raise NotCarried("a Cloud Storage notification whose JSON_API_V1 payload is not JSON") from None
        if not isinstance(parsed, dict):
            raise NotCarried("a Cloud Storage notification whose payload is not a JSON object")
        resource = parsed
    for key, value in (("bucket", bucket), ("name", name), ("generation", generation)):
        stated = resource.get(key)
        if value and stated not in (None, "") and str(stated) != value:
            raise NotCarried(f"a Cloud Storage notification whose payload {key} differs from its attributes")
    resource = {**resource, "bucket": bucket, "name": name, "generation": str(resource.get("generation") or generation)}
    ce = {
        "specversion": "1.0",
        "id": message.message_id,
        "type": ce_type,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "bucket": bucket,
    }
    when = attributes.get("eventTime") or message.attributes.get(SOURCE_PUBLISH_TIME) or message.publish_time
    if when:
        ce["time"] = when
    return ce, resource


def _published(
    message: Pulled, attributes: Mapping[str, str], topic: str, subscription: str
) -> tuple[dict[str, Any], Any]:
    """A message a Pub/Sub-source trigger took from ``topic``, as the ``messagePublished`` CloudEvent Eventarc
    delivers: the original data, attributes, ordering key and publish time; the id is the dead-letter message's."""
    published = message.attributes.get(SOURCE_PUBLISH_TIME) or message.publish_time
    body: dict[str, Any] = {"attributes": dict(attributes), "messageId": message.message_id}
    if message.data:
        body["data"] = base64.b64encode(message.data).decode("ascii")
    if published:
        body["publishTime"] = published
    if message.ordering_key:
        body["orderingKey"] = message.ordering_key
    ce = {
        "specversion": "1.0",
        "id": message.message_id,
        "type": PUBSUB_TYPE,
        "source": f"//pubsub.googleapis.com/{topic}",
    }
    if published:
        ce["time"] = published
    return ce, {"message": body, "subscription": subscription}
