from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger import events
from dagtrigger.conf import RESERVED_KEY, build_conf, conf_size
from dagtrigger.run_id import RUN_ID_MAX, RUN_ID_PATTERN, run_id_for

from .samples import pubsub_attrs, pubsub_data, pubsub_event, storage_attrs, storage_data, storage_event


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
