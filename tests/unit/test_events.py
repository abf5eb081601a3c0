from __future__ import annotations

import pytest

from dagtrigger import events
from dagtrigger.events import EventKind
from dagtrigger.exceptions import BadEvent

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def test_storage_finalize_is_parsed_with_its_identity() -> None:
    event = events.from_cloud_event(storage_attrs(), storage_data())
    assert event.kind is EventKind.STORAGE
    assert event.action == "finalized"
    assert event.storage is not None
    assert (event.storage.bucket, event.storage.name, event.storage.generation) == (
        "landing",
        "raw/2026/file.csv",
        "1732442400123456",
    )
    assert event.storage.resource["contentType"] == "text/csv"


def test_storage_data_as_bytes_is_accepted() -> None:
    event = events.from_cloud_event(storage_attrs(), b'{"bucket":"b","name":"n","generation":5}')
    assert event.storage is not None and event.storage.generation == "5"


def test_bucket_and_name_fall_back_to_source_and_subject() -> None:
    data = storage_data()
    del data["bucket"], data["name"]
    event = events.from_cloud_event(storage_attrs(bucket="b2", name="a/b.txt"), data)
    assert event.storage is not None
    assert (event.storage.bucket, event.storage.name) == ("b2", "a/b.txt")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"bucket": "b", "name": "n"}, "generation"),
        (b"not json", "not valid JSON"),
        ([1, 2], "JSON object"),
        ({"bucket": "b", "name": {"x": 1}, "generation": "1"}, "data.name"),
    ],
)
def test_malformed_storage_events_are_rejected_with_a_reason(data: object, fragment: str) -> None:
    with pytest.raises(BadEvent) as info:
        events.from_cloud_event(storage_attrs(), data)
    assert fragment in str(info.value)
    assert info.value.status == 400


def test_pubsub_message_is_decoded() -> None:
    event = events.from_cloud_event(pubsub_attrs(), pubsub_data(b'{"a": 1}', attributes={"k": "v"}))
    assert event.kind is EventKind.PUBSUB
    assert event.message is not None
    assert event.message.data == b'{"a": 1}'
    assert event.message.attributes == {"k": "v"}
    assert event.message.topic == "orders"
    assert event.message.message_id == "11223344556677"


def test_pubsub_without_data_or_id_falls_back_to_the_event_id() -> None:
    data = pubsub_data(None)
    del data["message"]["messageId"], data["message"]["message_id"]
    event = events.from_cloud_event(pubsub_attrs(id="999"), data)
    assert event.message is not None
    assert event.message.message_id == "999"
    assert event.message.data is None


def test_pubsub_bad_base64_is_rejected() -> None:
    data = pubsub_data(b"x")
    data["message"]["data"] = "!!!not base64!!!"
    with pytest.raises(BadEvent, match="base64"):
        events.from_cloud_event(pubsub_attrs(), data)


def test_unknown_type_is_unsupported_not_an_error() -> None:
    event = events.from_cloud_event(storage_attrs(type="com.example.something"), {"x": 1})
    assert event.kind is EventKind.UNSUPPORTED


def test_push_envelope() -> None:
    body = pubsub_data(b"hello")
    event = events.from_push_envelope(body)
    assert event.kind is EventKind.PUBSUB
    assert event.message is not None and event.message.subscription.endswith("eventarc-sub")  # type: ignore[union-attr]
    assert event.id == "11223344556677"


def test_webhook_uses_idempotency_header_case_insensitively() -> None:
    event = events.from_webhook(b'{"table": "orders"}', {"idempotency-key": "abc-1"}, "/hook")
    assert event.kind is EventKind.WEBHOOK
    assert event.id == "abc-1"
    assert event.webhook is not None and event.webhook.body == {"table": "orders"}


def test_webhook_without_key_is_identified_by_body_hash() -> None:
    one = events.from_webhook(b'{"a": 1}', {}, "/")
    two = events.from_webhook(b'{"a": 2}', {}, "/")
    assert one.id.startswith("sha256:") and one.id != two.id


@pytest.mark.parametrize("body", [b"[1]", b"nope", b"", b"\xff\xfe"])
def test_webhook_body_must_be_a_json_object(body: bytes) -> None:
    with pytest.raises(BadEvent):
        events.from_webhook(body, {}, "/")
