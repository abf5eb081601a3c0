from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger import events
from dagtrigger.conf import RESERVED_KEY, build_conf, conf_size
from dagtrigger.run_id import RUN_ID_MAX, RUN_ID_PATTERN, run_id_for

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def storage_event(name: str = "raw/2026/file.csv", generation: str = "1732442400123456", **attrs: str):
    return events.from_cloud_event(storage_attrs(name=name, **attrs), storage_data(name=name, generation=generation))


def test_storage_conf_is_the_object_resource_plus_event_metadata() -> None:
    conf = build_conf(storage_event(time="2026-11-24T10:00:00.123Z"))
    data = storage_data()
    for key in ("bucket", "name", "generation", "contentType", "metadata", "size", "timeCreated"):
        assert conf[key] == data[key]
    assert conf[RESERVED_KEY]["id"] == "7412583904123456"
    assert conf[RESERVED_KEY]["type"].endswith("finalized")
    assert conf[RESERVED_KEY]["subject"] == "objects/raw/2026/file.csv"
    assert conf[RESERVED_KEY]["time"] == "2026-11-24T10:00:00.123Z"
    assert conf[RESERVED_KEY]["source"].endswith("/buckets/landing")


def test_same_object_version_under_a_new_event_id_keeps_the_run_id() -> None:
    assert run_id_for(storage_event()) == run_id_for(storage_event(id="another-delivery-id"))


def test_overwrite_is_a_new_run() -> None:
    assert run_id_for(storage_event(generation="1")) != run_id_for(storage_event(generation="2"))


def test_event_type_is_part_of_the_identity() -> None:
    deleted = storage_event(type="google.cloud.storage.object.v1.deleted")
    assert run_id_for(deleted) != run_id_for(storage_event())
    assert run_id_for(deleted).startswith("gcs_deleted__")


def test_run_id_is_readable() -> None:
    run_id = run_id_for(storage_event())
    assert run_id.startswith("gcs_finalized__landing__raw_2026_file.csv__1732442400123456__")
    assert RUN_ID_PATTERN.match(run_id)


def test_names_that_squash_alike_still_get_distinct_run_ids() -> None:
    assert run_id_for(storage_event(name="a b.csv")) != run_id_for(storage_event(name="a_b.csv"))
    assert run_id_for(storage_event(name="été.csv")) != run_id_for(storage_event(name="ete.csv"))


def test_long_names_keep_the_file_name_and_fit() -> None:
    name = "deep/" * 200 + "final-report.parquet"
    run_id = run_id_for(storage_event(name=name))
    assert len(run_id) <= RUN_ID_MAX
    assert "final-report.parquet" in run_id


def pubsub_event(payload: bytes | None, message_id: str = "11223344556677"):
    return events.from_cloud_event(pubsub_attrs(message_id=message_id), pubsub_data(payload, message_id=message_id))


def test_pubsub_json_object_spreads_into_conf_with_metadata() -> None:
    conf = build_conf(pubsub_event(b'{"table": "orders", "rows": 3}'))
    assert conf["table"] == "orders" and conf["rows"] == 3
    meta = conf[RESERVED_KEY]
    assert meta["message_id"] == "11223344556677"
    assert meta["attributes"] == {"origin": "erp"}
    assert meta["publish_time"].endswith("Z") and meta["publish_time"][:4].isdigit()


def test_pubsub_text_binary_and_non_object_json() -> None:
    assert build_conf(pubsub_event("héllo".encode()))["data_text"] == "héllo"
    raw = bytes(range(256))
    assert base64.b64decode(build_conf(pubsub_event(raw))["data_base64"]) == raw
    assert build_conf(pubsub_event(b"[1, 2]"))["data_json"] == [1, 2]
    assert set(build_conf(pubsub_event(None))) == {RESERVED_KEY}


def test_pubsub_run_id_follows_the_message_id() -> None:
    assert run_id_for(pubsub_event(b"a")) == run_id_for(pubsub_event(b"b"))
    assert run_id_for(pubsub_event(b"a", "1")) != run_id_for(pubsub_event(b"a", "2"))
    assert run_id_for(pubsub_event(b"a")).startswith("pubsub__example-project__11223344556677__")


def test_webhook_run_id_uses_the_key_or_the_body() -> None:
    keyed = events.from_webhook(b'{"a": 1}', {"Idempotency-Key": "k1"}, "/")
    same_key = events.from_webhook(b'{"a": 2}', {"Idempotency-Key": "k1"}, "/")
    assert run_id_for(keyed) == run_id_for(same_key)
    body_a = events.from_webhook(b'{"a": 1}', {}, "/")
    body_b = events.from_webhook(b'{"a": 2}', {}, "/")
    assert run_id_for(body_a) != run_id_for(body_b)
    assert build_conf(body_a)["a"] == 1


def test_conf_size_counts_utf8_bytes() -> None:
    assert conf_size({"k": "é"}) == len(json.dumps({"k": "é"}, ensure_ascii=False, separators=(",", ":")).encode())


names = st.text(min_size=1, max_size=1200).filter(lambda s: s.strip() != "")
ids = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300)


@settings(max_examples=300, deadline=None)
@given(bucket=names.filter(lambda s: len(s) <= 222), name=names, generation=st.integers(0, 2**63).map(str))
def test_any_object_gives_a_valid_deterministic_run_id(bucket: str, name: str, generation: str) -> None:
    data = {"bucket": bucket, "name": name[:1024], "generation": generation}
    event = events.from_cloud_event(storage_attrs(bucket="b"), data)
    run_id = run_id_for(event)
    assert RUN_ID_PATTERN.match(run_id), run_id
    assert len(run_id) <= RUN_ID_MAX
    assert run_id == run_id_for(events.from_cloud_event(storage_attrs(bucket="b", id="other"), data))
    json.dumps(build_conf(event))


@settings(max_examples=300, deadline=None)
@given(message_id=ids, topic=ids, payload=st.binary(max_size=512), attrs=st.dictionaries(ids, ids, max_size=5))
def test_any_message_gives_a_valid_run_id_and_json_conf(
    message_id: str, topic: str, payload: bytes, attrs: dict[str, str]
) -> None:
    data = pubsub_data(payload, message_id=message_id, attributes=attrs)
    event = events.from_cloud_event(pubsub_attrs(topic=topic.replace("/", "_")), data)
    run_id = run_id_for(event)
    assert RUN_ID_PATTERN.match(run_id) and len(run_id) <= RUN_ID_MAX
    assert json.loads(json.dumps(build_conf(event)))[RESERVED_KEY]["message_id"] == message_id
