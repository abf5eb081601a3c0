"""Real-format event payloads (as Eventarc and Pub/Sub deliver them) for unit tests."""

from __future__ import annotations

import base64
import time
from typing import Any

from dagtrigger import events


def now_iso() -> str:
    """Event times are 'now': the pipeline gives up on events older than MAX_EVENT_AGE_SECONDS."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.123Z", time.gmtime())


FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"


def storage_attrs(bucket: str = "landing", name: str = "raw/2026/file.csv", **over: Any) -> dict[str, Any]:
    attrs = {
        "id": "7412583904123456",
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "time": now_iso(),
        "specversion": "1.0",
        "bucket": bucket,
    }
    attrs.update(over)
    return attrs


def storage_data(bucket: str = "landing", name: str = "raw/2026/file.csv", generation: str = "1732442400123456"):
    return {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{name}",
        "name": name,
        "bucket": bucket,
        "generation": generation,
        "metageneration": "1",
        "contentType": "text/csv",
        "timeCreated": "2026-11-24T10:00:00.100Z",
        "updated": "2026-11-24T10:00:00.100Z",
        "storageClass": "STANDARD",
        "size": "1024",
        "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
        "metadata": {"source": "erp"},
        "crc32c": "yZRlqg==",
        "etag": "CMDo3b3n0YkDEAE=",
    }


def pubsub_attrs(topic: str = "orders", message_id: str = "11223344556677", **over: Any) -> dict[str, Any]:
    attrs = {
        "id": message_id,
        "type": PUBLISHED,
        "source": f"//pubsub.googleapis.com/projects/example-project/topics/{topic}",
        "time": now_iso(),
        "specversion": "1.0",
    }
    attrs.update(over)
    return attrs


def pubsub_data(payload: bytes | None, message_id: str = "11223344556677", attributes: dict[str, str] | None = None):
    message: dict[str, Any] = {
        "attributes": attributes or {"origin": "erp"},
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": now_iso(),
        "publish_time": now_iso(),
    }
    if payload is not None:
        message["data"] = base64.b64encode(payload).decode()
    return {"message": message, "subscription": "projects/example-project/subscriptions/eventarc-sub"}


def storage_event(name: str = "raw/2026/file.csv", generation: str = "1732442400123456", **attrs: str):
    return events.from_cloud_event(storage_attrs(name=name, **attrs), storage_data(name=name, generation=generation))


def pubsub_event(payload: bytes | None, message_id: str = "11223344556677"):
    return events.from_cloud_event(pubsub_attrs(message_id=message_id), pubsub_data(payload, message_id=message_id))
