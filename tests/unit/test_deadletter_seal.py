"""Dead-letter seals (deadletter/seal.py): the canonical encoding is one-to-one over the sealed fields, any change to
a sealed field breaks the seal, a seal survives the record's JSON round trip and the changes replay makes, keys are
validated like webhook secrets, rotation works, and the store never seals a record it did not verify (merging into a
planted record would otherwise launder it). Replay's use of the seal is tested against a real process in
tests/security/test_sealed_records.py."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagtrigger import events
from dagtrigger.deadletter import DeadLetter, DeadLetterStore, new_record, utc_iso, with_replay
from dagtrigger.deadletter.seal import (
    DOMAIN,
    NO_KEYS,
    SEALED_FIELDS,
    SealKeys,
    canonical,
    encoding,
    member_encoding,
    unsealed_refusal,
)
from dagtrigger.exceptions import BadDeadLetter, ConfigError
from dagtrigger.settings import settings_from_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator

from .samples import pubsub_attrs, pubsub_data

KEY = base64.b64encode(b"k" * 32).decode()
OLD_KEY = base64.b64encode(b"o" * 16).decode()
T0 = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
texts = st.text(min_size=1, max_size=30)
sealed_values = {
    "transport": st.sampled_from(["cloudevent", "push", "webhook"]),
    "raw": st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    "attempts": st.integers(min_value=1, max_value=10_000),
    "route": texts,
    "dag_id": texts,
    "run_id": texts,
    "recorded_at": st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)).map(utc_iso),
}
records = st.builds(
    lambda values: DeadLetter(
        event_id="m-1",
        event_type="google.cloud.pubsub.topic.v1.messagePublished",
        event_time=None,
        reason="404",
        status=404,
        first_seen="2026-11-24T10:00:05.000Z",
        **values,
    ),
    st.fixed_dictionaries(sealed_values),
)


def _typed(value: Any) -> Any:
    """``value`` with its JSON type made part of it (Python says 1 == 1.0 == True; JSON does not)."""
    if isinstance(value, dict):
        return ("object", tuple(sorted((k, _typed(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("array", tuple(_typed(v) for v in value))
    if isinstance(value, float) and value == 0:
        return ("number", repr(value))  # 0.0 and -0.0 are two encodings and two values
    return (type(value).__name__, value)


def _sealed_fields(record: DeadLetter) -> Any:
    return _typed({name: getattr(record, name) for name in SEALED_FIELDS})


@given(records)
def test_the_encoding_decodes_back_to_the_sealed_fields(record: DeadLetter) -> None:
    """One reading: the bytes after the domain are JSON that gives back exactly the sealed fields, so the encoding is
    one-to-one (two records with the same encoding have the same sealed fields)."""
    data = encoding(record)
    assert data.startswith(DOMAIN)
    assert _typed(json.loads(data[len(DOMAIN) :])) == _sealed_fields(record)


@given(records, records)
def test_two_records_differing_in_a_sealed_field_never_share_an_encoding(a: DeadLetter, b: DeadLetter) -> None:
    assert (encoding(a) == encoding(b)) == (_sealed_fields(a) == _sealed_fields(b))


@given(records, st.data())
def test_any_change_to_any_sealed_field_breaks_the_seal(record: DeadLetter, data: st.DataObject) -> None:
    keys = SealKeys.parse(KEY)
    sealed = keys.seal(record)
    assert keys.problem(sealed) is None
    name = data.draw(st.sampled_from(SEALED_FIELDS))
    value = data.draw(sealed_values[name].filter(lambda v: _typed(v) != _typed(getattr(record, name))))
    changed = dataclasses.replace(sealed, **{name: value})
    assert (keys.problem(changed) or "").startswith("the seal does not match: a sealed field changed")
    with pytest.raises(BadDeadLetter, match="does not match"):
        keys.verified(changed)


@given(records)
def test_a_seal_survives_the_json_round_trip_and_what_replay_changes(record: DeadLetter) -> None:
    keys = SealKeys.parse(KEY)
    stored = DeadLetter.from_json(keys.seal(record).to_json().encode("utf-8"))
    assert keys.verified(stored)
    marked = with_replay(stored, "failed", "Airflow said 500", T0)  # replay rewrites the record: not a sealed field
    assert keys.verified(DeadLetter.from_json(marked.to_json()))
    retold = dataclasses.replace(stored, reason="other", status=500, last_seen="x", event_id="y")
    assert keys.verified(retold)  # informational fields are not sealed: replay does not use them


def test_canonical_json_refuses_what_would_make_two_values_one() -> None:
    assert canonical({"b": [1, 1.0, True, None], "a": "é"}) == '{"a":"\\u00e9","b":[1,1.0,true,null]}'
    for bad in ({1: "x"}, {"a": float("nan")}, {"a": (1, 2)}, {"a": b"x"}, {"a": float("inf")}):
        with pytest.raises(ValueError):
            canonical(bad)
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper"):
        canonical(deep)


def _pubsub_record(run_id: str = "pubsub__p__m-1__abc") -> DeadLetter:
    event = events.from_cloud_event(pubsub_attrs(message_id="m-1"), pubsub_data(b'{"order": 7}', message_id="m-1"))
    return new_record(event, dag_id="orders", route="orders", run_id=run_id, reason="404", status=404, now=T0)


def test_a_seal_names_its_key_and_another_key_is_told_apart_from_a_change() -> None:
    record = _pubsub_record()
    foreign = SealKeys.parse(OLD_KEY).seal(record)
    keys = SealKeys.parse(KEY)
    assert foreign.seal.startswith("v1.") and len(foreign.seal.split(".")[2]) == 64
    assert "not sealed with a key this replay holds" in (keys.problem(foreign) or "")
    assert keys.problem(dataclasses.replace(foreign, seal="v0.abc.def")) == "the seal is not a v1 seal"
    assert keys.problem(record) == "the record has no seal"
    assert not keys.verified(record)  # no seal: the caller decides (unsealed_refusal)
    assert not SealKeys().verified(foreign)  # no keys: nothing can be verified
    assert KEY not in repr(keys) and "k" * 16 not in repr(keys)


def test_rotation_the_first_key_seals_every_key_verifies() -> None:
    record = _pubsub_record()
    old = SealKeys.parse(OLD_KEY).seal(record)
    rotated = SealKeys.parse(KEY, f" {OLD_KEY} , {base64.b64encode(b'z' * 20).decode()}")
    assert len(rotated.keys) == 3
    assert rotated.verified(old)
    assert rotated.seal(record).seal.split(".")[1] == SealKeys.parse(KEY).seal(record).seal.split(".")[1]


@pytest.mark.parametrize(
    ("current", "previous", "problem"),
    [
        (base64.b64encode(b"x" * 15).decode(), "", "decodes to a 15-byte key"),
        ("=", "", "must be base64"),  # no base64 characters: an empty key, known to everyone
        ("not base64 at all!", "", "must be base64"),
        (KEY, "short", "DEAD_LETTER_SEAL_SECRET_PREVIOUS: a seal key must be base64"),
        ("", OLD_KEY, "DEAD_LETTER_SEAL_SECRET_PREVIOUS is set without DEAD_LETTER_SEAL_SECRET"),
    ],
)
def test_keys_under_16_bytes_or_not_base64_stop_start_up(current: str, previous: str, problem: str) -> None:
    env = {"AIRFLOW_URI": "https://airflow.example", "DAG_ID": "d"}
    env.update(DEAD_LETTER_SEAL_SECRET=current, DEAD_LETTER_SEAL_SECRET_PREVIOUS=previous)
    with pytest.raises(ConfigError, match=problem):
        settings_from_env(env)


def test_the_keys_are_secrets_masked_in_logs() -> None:
    env = {"AIRFLOW_URI": "https://airflow.example", "DAG_ID": "d", "DEAD_LETTER_SEAL_SECRET": KEY + "\n"}
    env["DEAD_LETTER_SEAL_SECRET_PREVIOUS"] = OLD_KEY
    settings = settings_from_env(env)
    assert settings.dead_letter_seal_secrets == (KEY, OLD_KEY)
    assert KEY in settings.secrets() and OLD_KEY in settings.secrets()
    assert KEY not in repr(settings)


def test_unsealed_records_are_refused_with_a_key_and_pubsub_ones_without() -> None:
    keys = SealKeys.parse(KEY)
    assert "no seal" in (unsealed_refusal(keys, other_proof=True, accept_unsealed=False) or "")
    assert unsealed_refusal(keys, other_proof=True, accept_unsealed=True) is None
    assert unsealed_refusal(SealKeys(), other_proof=True, accept_unsealed=False) is None  # today's behaviour
    assert "Pub/Sub" in (unsealed_refusal(SealKeys(), other_proof=False, accept_unsealed=False) or "")
    assert unsealed_refusal(SealKeys(), other_proof=False, accept_unsealed=True) is None


# -- the store: what it writes is sealed, and it never seals what it did not verify


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        yield emulator


_buckets = itertools.count()


def _stores(gcs: StorageEmulator, keys: SealKeys) -> tuple[DeadLetterStore, DeadLetterStore]:
    """The function's store (sealing with ``keys``) and a bucket writer's (no key), on one fresh bucket."""
    bucket = f"sealed-{next(_buckets)}"
    gcs.create_bucket(bucket)
    uri = f"gs://{bucket}/dl"
    return DeadLetterStore(uri, client=gcs.client(), seal=keys), DeadLetterStore(uri, client=gcs.client())


def test_a_repeated_failure_is_merged_and_sealed_again_under_the_current_key(gcs: StorageEmulator) -> None:
    keys = SealKeys.parse(KEY, OLD_KEY)
    function, _ = _stores(gcs, SealKeys.parse(OLD_KEY))
    name = function.write(_pubsub_record())
    rotated = DeadLetterStore(f"gs://{function.bucket_name}/dl", client=gcs.client(), seal=keys)
    again = dataclasses.replace(_pubsub_record(), route="orders-v2")
    assert rotated.write(again) == name
    stored = rotated.read(name)
    assert stored.attempts == 2 and stored.route == "orders-v2"
    assert keys.verified(stored) and stored.seal == keys.seal(stored).seal  # re-sealed with the first key


def test_a_planted_record_at_the_name_is_replaced_not_sealed(gcs: StorageEmulator) -> None:
    """Merging keeps the first record's request: merged into a planted record, a real failure would seal it."""
    keys = SealKeys.parse(KEY)
    function, writer = _stores(gcs, keys)
    genuine = _pubsub_record()
    planted = dataclasses.replace(genuine, raw={**genuine.raw, "data": {"message": {"data": "ZXZpbA=="}}})
    name = writer.write(planted)
    assert function.write(genuine) == name
    stored = function.read(name)
    assert stored.raw == genuine.raw and stored.attempts == 1 and keys.verified(stored)


def test_without_a_key_records_are_written_as_before(gcs: StorageEmulator) -> None:
    function, _ = _stores(gcs, SealKeys())
    name = function.write(SealKeys.parse(KEY).seal(_pubsub_record()))
    assert "seal" in json.loads(gcs.client().bucket(function.bucket_name).blob(name).download_as_bytes())
    function.write(_pubsub_record())  # merged by a function without the key: the old seal no longer holds
    assert "seal" not in json.loads(gcs.client().bucket(function.bucket_name).blob(name).download_as_bytes())


# Not sealed, on purpose: replay does not read them (the event is parsed again from raw), or replay itself changes them.
UNSEALED = {"event_id", "event_type", "event_time", "reason", "status", "first_seen", "last_seen", "replays"}


def test_every_field_of_a_record_is_sealed_or_left_out_on_purpose() -> None:
    """A field added to DeadLetter must be put on one side: replay reading an unsealed field would be a hole."""
    own = {"version", "seal", "extra"}
    assert {f.name for f in dataclasses.fields(DeadLetter)} - own == set(SEALED_FIELDS) | UNSEALED


def test_the_function_drain_and_replay_all_take_the_key_from_the_one_build() -> None:
    """main.py, `drain`, `sweep` and `replay` build their pipeline with function.build: its store seals with the
    configured key and its replay verifies with the same keys."""
    from dagtrigger import function

    env = {"AIRFLOW_URI": "https://airflow.example", "AIRFLOW_AUTH": "none", "DAG_ID": "d"}
    env.update(DEAD_LETTER_URI="gs://dead-letters/p", DEAD_LETTER_SEAL_SECRET=KEY)
    env.update(DEAD_LETTER_SEAL_SECRET_PREVIOUS=OLD_KEY)
    pipeline = function.build(env).pipeline
    assert pipeline.dead_letters is not None
    assert pipeline.dead_letters.seal == pipeline.seal == SealKeys.parse(KEY, OLD_KEY)


# ------------------------------------------------------------------------------------------------- batch members

MEMBERS = st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda k: k != "seal"), json_values, max_size=5)


@given(MEMBERS, st.text(min_size=1, max_size=12), st.data())
def test_a_member_seal_binds_every_field_and_the_object(member: dict[str, Any], name: str, data: st.DataObject) -> None:
    keys = SealKeys.parse(KEY)
    sealed = json.loads(json.dumps(keys.seal_member("ops", name, member)))  # as written to and read from storage
    assert keys.member_problem("ops", name, sealed) is None
    assert keys.member_problem("ops", name + "x", sealed) is not None  # copied into another batch's folder
    assert keys.member_problem("ops2", name, sealed) is not None
    changed = {**sealed, data.draw(st.text(min_size=1, max_size=8).filter(lambda k: k != "seal")): "planted"}
    if changed != sealed:
        assert keys.member_problem("ops", name, changed) is not None
    assert SealKeys.parse(base64.b64encode(b"o" * 32).decode()).member_problem("ops", name, sealed) is not None
    assert NO_KEYS.seal_member("ops", name, member) == member  # without keys, written as before


def test_a_member_seal_never_verifies_as_a_dead_letter_seal_or_back() -> None:
    """Separate domains: a sealed dead letter's bytes can not be passed off as a member's."""
    keys = SealKeys.parse(KEY)
    member = {"key": "k", "late": False, "conf": {}}
    sealed = keys.seal_member("ops", "m.json", member)
    assert keys.member_problem("ops", "m.json", {**member, "seal": sealed["seal"]}) is None
    assert member_encoding("ops", "m.json", member).startswith(b"dagtrigger batch member seal v1\n")
    assert encoding(_pubsub_record()).startswith(DOMAIN) and DOMAIN != member_encoding("ops", "m.json", member)[:32]


def test_the_dead_letter_store_seals_with_the_pipelines_own_keys() -> None:
    """One reading of DEAD_LETTER_SEAL_SECRET: the store that writes records and the pipeline that verifies replays
    and seals batch members hold the same keys (they were decoded twice, which two settings could make differ)."""
    from dagtrigger import function

    key = base64.b64encode(b"k" * 32).decode()
    env = {
        "AIRFLOW_URI": "http://127.0.0.1:9",
        "DAG_ID": "d",
        "DEAD_LETTER_URI": "gs://bucket-dl/prefix",
        "DEAD_LETTER_SEAL_SECRET": key,
    }
    pipeline = function.build(env).pipeline
    assert pipeline.dead_letters is not None
    assert pipeline.dead_letters.seal is pipeline.seal
    assert pipeline.seal  # a key was read
