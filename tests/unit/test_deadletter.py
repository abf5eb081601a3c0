"""Dead letters: the record format, names, filters and merge rules (pure), then the store against the Cloud Storage
emulator (write, update in place, list, mark, failures). Preconditions are ignored by the emulator, so the 412 paths
are proven by injecting the conflict."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dagtrigger import deadletter as dl
from dagtrigger import events
from dagtrigger.deadletter import (
    BadDeadLetter,
    DeadLetter,
    DeadLetterReadError,
    DeadLetterStore,
    DeadLetterWriteError,
)
from dagtrigger.delivery import Delivery
from dagtrigger.exceptions import ConfigError
from tests.support.clock import FakeClock
from tests.support.storage_emulator import StorageEmulator, storage_emulator

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

ROOT = Path(__file__).resolve().parents[2]
EVENT_TIME = "2026-11-24T10:00:00.123Z"  # fixed: record names and days are computed from it

T0 = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
TOKEN = "ya29.a0AfB_secret-token-that-must-never-be-stored"
SIGNATURE = "sha256=0123456789abcdef0123456789abcdef"


# ------------------------------------------------------------------------------------------------------ helpers


def storage_record(
    dag_id: str = "ingest", run_id: str = "gcs_finalized__landing__f__1__abc", now: datetime = T0, **over: Any
) -> DeadLetter:
    attrs, data = storage_attrs(time=EVENT_TIME), storage_data()
    received = Delivery.cloud_event(attrs, data)
    fields: dict[str, Any] = {"route": "default", "reason": "Airflow 404", "status": 404, **over}
    event = events.from_cloud_event(attrs, data)
    return dl.new_record(event, delivery=received, dag_id=dag_id, run_id=run_id, now=now, **fields)


def webhook_parts() -> tuple[bytes, dict[str, str], str]:
    body = json.dumps({"order": 42, "note": "été"}).encode()
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": "order-42",
        "Authorization": f"Bearer {TOKEN}",
        "X-Hub-Signature-256": SIGNATURE,
        "Cookie": "session=abc",
        "X-Forwarded-For": "203.0.113.9",
    }
    return body, headers, "/hooks/orders"


# ------------------------------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://dl-bucket/dead-letters", ("dl-bucket", "dead-letters")),
        ("  gs://dl-bucket/a/b/  ", ("dl-bucket", "a/b")),
        ("gs://dl-bucket", ("dl-bucket", "")),
        ("gs://dl-bucket/", ("dl-bucket", "")),
        ("gs://my.bucket_1/été", ("my.bucket_1", "été")),
    ],
)
def test_parse_uri_accepts(uri: str, expected: tuple[str, str]) -> None:
    assert dl.parse_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "dl-bucket/dead-letters",
        "s3://dl-bucket/x",
        "gs:///x",
        "gs://DL-Bucket/x",
        "gs://a/x",
        "gs://dl..bucket/x",
        "gs://dl-bucket/a//b",
        "gs://dl-bucket/a/../b",
        "gs://dl-bucket/a*",
        "gs://dl-bucket/a\nb",
        "gs://dl-bucket/" + "p" * 600,
    ],
)
def test_parse_uri_rejects_with_variable_and_example(uri: str) -> None:
    with pytest.raises(ConfigError) as error:
        dl.parse_uri(uri)
    assert str(error.value).startswith("DEAD_LETTER_URI: ")
    assert f"(example: DEAD_LETTER_URI={dl.EXAMPLE_URI})" in str(error.value)


# -------------------------------------------------------------------------------------------------------- records


def test_storage_record_fields() -> None:
    record = storage_record()
    assert record.version == 1
    assert record.event_id == "7412583904123456"
    assert record.event_type == "google.cloud.storage.object.v1.finalized"
    assert record.event_time == "2026-11-24T10:00:00.123Z"
    assert record.first_seen == record.recorded_at == record.last_seen == "2026-11-24T10:00:05.000Z"
    assert (record.transport, record.status, record.attempts, record.replays) == ("cloudevent", 404, 1, ())
    assert record.raw == {"attributes": storage_attrs(time=EVENT_TIME), "data": storage_data()}


def test_round_trip_is_exact_for_every_transport() -> None:
    body, headers, path = webhook_parts()
    raws = [
        Delivery.cloud_event(storage_attrs(time=EVENT_TIME), storage_data()),
        Delivery.cloud_event(pubsub_attrs(time=EVENT_TIME), pubsub_data(b"\xff\x00binary")),
        Delivery.cloud_event({"id": "1", "type": "x.y", "source": "//s"}, b"\xff\xfe not json"),
        Delivery.cloud_event({"id": "1", "type": "x.y", "source": "//s"}, None),
        Delivery.push({**pubsub_data(b'{"a": 1}'), "deliveryAttempt": 3}),
        Delivery.webhook(body, headers, path, events.SAFE_HEADERS),
    ]
    for received in raws:
        record = dl.with_replay(
            DeadLetter(
                event_id="e",
                event_type="t",
                event_time=None,
                dag_id="d",
                route="r",
                run_id="run",
                reason="why",
                status=None,
                attempts=received.attempts or 1,
                first_seen="2026-11-24T10:00:00.000Z",
                recorded_at="2026-11-24T10:00:01.000Z",
                transport=received.transport,
                raw=received.raw,
            ),
            "failed",
            "still 404",
            T0,
        )
        text = record.to_json()
        assert DeadLetter.from_json(text) == record
        assert DeadLetter.from_json(text.encode()).to_json() == text
        json.loads(text)  # plain JSON, readable by anything


def test_cloud_event_bytes_are_base64_and_push_keeps_delivery_attempt() -> None:
    received = Delivery.cloud_event({"id": "1"}, b"\xff\x00")
    assert received.raw["data"] == {"_base64": base64.b64encode(b"\xff\x00").decode()}
    push = Delivery.push({**pubsub_data(b"x"), "deliveryAttempt": 4})
    assert push.attempts == 4 and push.raw["body"]["deliveryAttempt"] == 4
    assert Delivery.push(pubsub_data(b"x")).attempts is None


def test_unknown_keys_from_newer_versions_survive_a_rewrite() -> None:
    doc = json.loads(storage_record().to_json())
    doc.update(version=2, priority="high", lineage={"parent": "x"})
    record = DeadLetter.from_json(json.dumps(doc))
    assert record.version == 2 and record.extra == {"priority": "high", "lineage": {"parent": "x"}}
    rewritten = json.loads(dl.with_replay(record, "done", "replayed", T0).to_json())
    assert rewritten["priority"] == "high" and rewritten["lineage"] == {"parent": "x"} and rewritten["version"] == 2
    minimal = DeadLetter.from_json(
        json.dumps({"event_id": "e", "dag_id": "d", "run_id": "r", "recorded_at": "2026-11-24T10:00:00Z"})
    )
    assert (minimal.version, minimal.attempts, minimal.first_seen, minimal.replays) == (
        1,
        1,
        "2026-11-24T10:00:00Z",
        (),
    )


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        "{}",
        '{"event_id": "e", "dag_id": "d", "run_id": "r"}',
        '{"event_id": "e", "dag_id": "d", "run_id": "r", "recorded_at": "yesterday"}',
        '{"event_id": "e", "dag_id": "d", "run_id": "r", "recorded_at": "2026-11-24T10:00:00Z", "attempts": "2"}',
        '{"event_id": "e", "dag_id": "d", "run_id": "r", "recorded_at": "2026-11-24T10:00:00Z", "replays": {}}',
        '{"event_id": "e", "dag_id": "d", "run_id": "r", "recorded_at": "2026-11-24T10:00:00Z", "raw": []}',
    ],
)
def test_unreadable_records_raise_bad_dead_letter(text: str) -> None:
    with pytest.raises(BadDeadLetter):
        DeadLetter.from_json(text)


def test_webhook_record_never_holds_secrets() -> None:
    body, headers, path = webhook_parts()
    received = Delivery.webhook(body, headers, path, events.SAFE_HEADERS)
    assert received.raw["headers"] == {"content-type": "application/json", "idempotency-key": "order-42"}
    record = dl.new_record(
        events.from_webhook(body, headers, path),
        delivery=received,
        dag_id="orders",
        route="hooks",
        run_id="webhook__order-42__abc",
        reason="Airflow 422",
        status=422,
        now=T0,
    )
    text = record.to_json()
    for secret in (TOKEN, SIGNATURE, "session=abc", "203.0.113.9", "Authorization", "authorization", "Signature"):
        assert secret not in text
    assert base64.b64decode(record.raw["body_base64"]) == body


@pytest.mark.parametrize("kind", ["storage", "pubsub", "pubsub-binary", "push", "webhook"])
def test_replay_parses_the_stored_event_back_to_the_same_event(kind: str) -> None:
    if kind == "webhook":
        body, headers, path = webhook_parts()
        received, original = (
            Delivery.webhook(body, headers, path, events.SAFE_HEADERS),
            events.from_webhook(body, headers, path),
        )
    elif kind == "push":
        envelope = pubsub_data(b'{"a": 1}')
        received, original = Delivery.push(envelope), events.from_push_envelope(envelope)
    else:
        attrs, data = {
            "storage": (storage_attrs(time=EVENT_TIME), storage_data()),
            "pubsub": (pubsub_attrs(time=EVENT_TIME), pubsub_data(b'{"a": 1}')),
            "pubsub-binary": (pubsub_attrs(time=EVENT_TIME), json.dumps(pubsub_data(b"\xff\x00")).encode()),
        }[kind]
        received, original = Delivery.cloud_event(attrs, data), events.from_cloud_event(attrs, data)
    record = dl.new_record(original, delivery=received, dag_id="d", route="r", run_id="x", reason="?", now=T0)
    assert dl.event_from_record(DeadLetter.from_json(record.to_json())) == original


def test_replay_refuses_a_raw_event_it_cannot_rebuild() -> None:
    record = storage_record()
    for raw, transport in [
        ({"attributes": "nope"}, "cloudevent"),
        ({"body": []}, "push"),
        ({"body_base64": "***"}, "webhook"),
        ({}, "carrier-pigeon"),
    ]:
        with pytest.raises(BadDeadLetter):
            dl.event_from_record(DeadLetter.from_dict({**record.to_dict(), "raw": raw, "transport": transport}))


def test_new_record_validates_transport_and_counts_attempts() -> None:
    event = events.from_cloud_event(storage_attrs(time=EVENT_TIME), storage_data())
    with pytest.raises(ValueError, match="transport"):
        dl.new_record(
            event, delivery=Delivery.stored("smoke-signal", {}), dag_id="d", route="r", run_id="x", reason="?", now=T0
        )
    push = Delivery.push({**pubsub_data(b"x"), "deliveryAttempt": 5})
    assert dl.new_record(event, delivery=push, dag_id="d", route="r", run_id="x", reason="?", now=T0).attempts == 5
    ids = {"dag_id": "d", "route": "r", "run_id": "x", "reason": "?", "now": T0}
    assert dl.new_record(event, delivery=push, attempts=7, **ids).attempts == 7


# ---------------------------------------------------------------------------------------------- names and merge


def test_object_name_is_day_dag_run_and_deterministic() -> None:
    record = storage_record(run_id="gcs_finalized__landing__raw_2026_file.csv__1732442400123456__f0689b8a5ccb")
    name = dl.object_name(record, "dead-letters")
    assert name == (
        "dead-letters/2026/11/24/ingest/gcs_finalized__landing__raw_2026_file.csv__1732442400123456__f0689b8a5ccb.json"
    )
    assert dl.object_name(storage_record(), "") == "2026/11/24/ingest/gcs_finalized__landing__f__1__abc.json"
    later = storage_record(now=T0 + timedelta(hours=3))
    assert dl.object_name(later, "p") == dl.object_name(storage_record(), "p")  # same day, same (DAG, run)
    assert dl.parse_name(name, "dead-letters") == dl.NameParts(date(2026, 11, 24), "ingest", record.run_id)


@pytest.mark.parametrize(
    ("dag_id", "run_id"),
    [
        ("ingest.v2-daily_x", "run.1-a_b"),
        (".", ".."),
        ("étés/1 %2F?#", "run id with spaces/and slashes"),
        ("数据管道", "ラン"),
    ],
)
def test_odd_and_unicode_ids_give_one_safe_segment_each(dag_id: str, run_id: str) -> None:
    name = dl.object_name(storage_record(dag_id=dag_id, run_id=run_id), "p")
    segments = name.split("/")
    assert len(segments) == 6 and segments[:4] == ["p", "2026", "11", "24"]
    assert all(s not in ("", ".", "..") for s in segments)
    assert dl.parse_name(name, "p") == dl.NameParts(date(2026, 11, 24), dag_id, run_id)


@pytest.mark.parametrize(
    "name",
    [
        "p/2026/11/24/d.json",
        "p/2026/11/24/d/r.txt",
        "q/2026/11/24/d/r.json",
        "p/2026/13/01/d/r.json",
        "p/x/y/z/d/r.json",
        "p/2026/11/24/d/.json",
    ],
)
def test_parse_name_ignores_foreign_objects(name: str) -> None:
    assert dl.parse_name(name, "p") is None


def test_merge_keeps_the_first_record_and_counts_the_new_failure() -> None:
    first = dl.with_replay(storage_record(), "failed", "still 404", T0 + timedelta(minutes=1))
    again = storage_record(now=T0 + timedelta(days=1), reason="Airflow 400", status=400, route="r2")
    merged = dl.merge(first, again)
    assert merged.recorded_at == first.recorded_at and merged.first_seen == first.first_seen
    assert merged.last_seen == again.recorded_at
    assert (merged.reason, merged.status, merged.route, merged.attempts) == ("Airflow 400", 400, "r2", 2)
    assert merged.replays == first.replays and merged.raw == first.raw
    again = dl.new_record(_event(), delivery=Delivery.push({}), **_ids(), attempts=9, now=T0)
    assert dl.merge(merged, again).attempts == 9
    assert dl.object_name(merged, "p") == dl.object_name(first, "p")


def _event() -> events.Event:
    return events.from_cloud_event(storage_attrs(time=EVENT_TIME), storage_data())


def _ids() -> dict[str, Any]:
    return {"dag_id": "ingest", "route": "default", "run_id": "gcs_finalized__landing__f__1__abc", "reason": "x"}


def test_candidate_days_span_from_the_event_day_bounded() -> None:
    record = storage_record(now=datetime(2026, 11, 26, 1, tzinfo=UTC))  # event time 2026-11-24
    assert dl.candidate_days(record) == (date(2026, 11, 26), date(2026, 11, 25), date(2026, 11, 24))
    same_day = storage_record()
    assert dl.candidate_days(same_day) == (date(2026, 11, 24),)
    old = storage_record(now=datetime(2026, 12, 30, tzinfo=UTC))
    assert len(dl.candidate_days(old)) == dl.LOOKBACK_DAYS + 1
    no_time = dataclasses.replace(same_day, event_time=None)
    assert dl.candidate_days(no_time) == (date(2026, 11, 24), date(2026, 11, 23))


def test_filters_by_dag_time_and_replay_state() -> None:
    record = storage_record()
    assert dl.matches(record) and dl.matches(record, dag_id="ingest") and not dl.matches(record, dag_id="other")
    assert dl.matches(record, since=T0, until=T0 + timedelta(seconds=1))
    assert not dl.matches(record, since=T0 + timedelta(milliseconds=1))
    assert not dl.matches(record, until=T0)  # until is exclusive
    assert dl.matches(record, since=T0.replace(tzinfo=None))  # naive = UTC
    failed = dl.with_replay(record, "failed", "404 again", T0)
    assert not failed.replayed and dl.matches(failed)
    done = dl.with_replay(failed, "done", "run created", T0)
    assert done.replayed and not dl.matches(done) and dl.matches(done, include_replayed=True)
    assert dl.with_replay(record, "duplicate", "409", T0).replayed
    assert not dl.with_replay(done, "retry", "503", T0).replayed  # the last replay decides
    with pytest.raises(ValueError, match="replay outcome"):
        dl.with_replay(record, "succeeded", "typo", T0)


def test_redact_masks_credentials() -> None:
    text = dl.redact(
        f"GET https://user:pw@storage.googleapis.com/x?access_token={TOKEN}&alt=media "
        f"Authorization: Bearer {TOKEN} Basic dXNlcjpwYXNz {TOKEN}"
    )
    assert TOKEN not in text and "pw@" not in text and "dXNlcjpwYXNz" not in text


def test_importing_the_module_does_not_import_google_cloud_storage() -> None:
    code = "import sys, dagtrigger.deadletter; print('google.cloud.storage' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------- store (emulator)


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        yield emulator


_buckets = itertools.count()


@pytest.fixture
def store(gcs: StorageEmulator) -> DeadLetterStore:
    bucket = f"dead-letters-{next(_buckets)}"
    gcs.create_bucket(bucket)
    return DeadLetterStore(f"gs://{bucket}/dl", client=gcs.client(), budget_s=5)


def _stored(gcs: StorageEmulator, store: DeadLetterStore, name: str) -> tuple[dict[str, Any], Any]:
    blob = gcs.client().bucket(store.bucket_name).get_blob(name)
    return json.loads(blob.download_as_bytes()), blob


def test_write_creates_one_object_per_dag_and_run(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    record = storage_record()
    name = store.write(record)
    assert name == "dl/2026/11/24/ingest/gcs_finalized__landing__f__1__abc.json"
    doc, blob = _stored(gcs, store, name)
    assert DeadLetter.from_dict(doc) == record
    assert blob.content_type.startswith("application/json")
    assert blob.metadata == {"dagtrigger-replayed": "false"}
    assert store.read(name) == record


def test_a_redelivered_failure_updates_the_first_record(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    first = store.write(storage_record())
    second = store.write(storage_record(now=T0 + timedelta(hours=2), reason="Airflow 400", status=400))
    third = store.write(storage_record(now=T0 + timedelta(days=1, hours=1), reason="Airflow 422", status=422))
    assert first == second == third
    assert gcs.objects(store.bucket_name) == [first]
    record = store.read(first)
    assert (record.attempts, record.reason, record.status) == (3, "Airflow 422", 422)
    assert record.recorded_at == "2026-11-24T10:00:05.000Z"
    assert record.last_seen == "2026-11-25T11:00:05.000Z"


def test_list_filters_by_dag_time_and_replayed(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    names = {
        (dag, day): store.write(storage_record(dag_id=dag, run_id=f"run_{day}", now=T0 + timedelta(days=day)))
        for dag in ("ingest", "export")
        for day in (0, 1, 2)
    }
    client = gcs.client()
    client.bucket(store.bucket_name).blob("dl/2026/11/25/ingest/corrupt.json").upload_from_string(b"{oops")
    client.bucket(store.bucket_name).blob("dl/README.txt").upload_from_string(b"not a record")
    client.bucket(store.bucket_name).blob("elsewhere/2026/11/25/ingest/r.json").upload_from_string(b"{}")

    everything = [name for name, _ in store.list()]
    assert everything == sorted(names.values())
    ingest = [(n, r.dag_id) for n, r in store.list(dag_id="ingest")]
    assert [n for n, _ in ingest] == sorted(names[("ingest", d)] for d in (0, 1, 2))
    assert {d for _, d in ingest} == {"ingest"}
    window = [n for n, _ in store.list(since=T0 + timedelta(days=1), until=T0 + timedelta(days=2))]
    assert window == sorted([names[("export", 1)], names[("ingest", 1)]])
    assert len(list(store.list(limit=2))) == 2

    store.mark_replayed(names[("ingest", 0)], "done", "run created", T0 + timedelta(days=3))
    store.mark_replayed(names[("ingest", 1)], "failed", "404 again", T0 + timedelta(days=3))
    pending = [n for n, _ in store.list(dag_id="ingest")]
    assert pending == sorted([names[("ingest", 1)], names[("ingest", 2)]])
    assert len(list(store.list(dag_id="ingest", include_replayed=True))) == 3


def test_mark_replayed_appends_and_rewrites(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    name = store.write(storage_record())
    store.mark_replayed(name, "failed", "Airflow 404 again", T0 + timedelta(hours=1))
    updated = store.mark_replayed(name, "done", "run created", T0 + timedelta(hours=2))
    assert updated.replayed
    assert [dict(r) for r in updated.replays] == [
        {"at": "2026-11-24T11:00:05.000Z", "outcome": "failed", "reason": "Airflow 404 again"},
        {"at": "2026-11-24T12:00:05.000Z", "outcome": "done", "reason": "run created"},
    ]
    doc, blob = _stored(gcs, store, name)
    assert DeadLetter.from_dict(doc) == updated and blob.metadata == {"dagtrigger-replayed": "true"}
    # a failure after a replay keeps the trail
    assert store.read(store.write(storage_record(now=T0 + timedelta(hours=3)))).replays == updated.replays


def test_mark_replayed_refuses_bad_input(store: DeadLetterStore) -> None:
    name = store.write(storage_record())
    with pytest.raises(ValueError, match="replay outcome"):
        store.mark_replayed(name, "ok", "typo")
    with pytest.raises(ValueError, match="not a dead-letter object name"):
        store.mark_replayed("other/2026/11/24/d/r.json", "done", "x")
    with pytest.raises(DeadLetterWriteError, match="nothing to mark"):
        store.mark_replayed("dl/2026/11/24/ingest/missing.json", "done", "x")


def test_a_corrupt_object_at_the_name_is_not_overwritten(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    name = store.name_for(storage_record())
    gcs.client().bucket(store.bucket_name).blob(name).upload_from_string(b"{half a record")
    with pytest.raises(DeadLetterWriteError, match="move it aside"):
        store.write(storage_record())
    with pytest.raises(BadDeadLetter):
        store.read(name)


def test_write_to_a_missing_bucket_raises(gcs: StorageEmulator) -> None:
    store = DeadLetterStore("gs://no-such-bucket/dl", client=gcs.client(), budget_s=2)
    with pytest.raises(DeadLetterWriteError, match="check that the bucket in DEAD_LETTER_URI exists") as error:
        store.write(storage_record())
    assert "no-such-bucket" in str(error.value)
    with pytest.raises(DeadLetterReadError):
        list(store.list())


def test_write_with_the_server_gone_raises_within_the_budget() -> None:
    with storage_emulator() as emulator:
        emulator.create_bucket("dl-bucket")
        store = DeadLetterStore("gs://dl-bucket/dl", client=emulator.client(), budget_s=1.5, timeout_s=1)
        store.write(storage_record())
        emulator.stop()
        started = datetime.now(UTC)
        with pytest.raises(DeadLetterWriteError, match="could not write the dead letter for DAG 'ingest'"):
            store.write(storage_record(run_id="another"))
        assert datetime.now(UTC) - started < timedelta(seconds=5)
        with pytest.raises(DeadLetterWriteError):
            store.mark_replayed("dl/2026/11/24/ingest/another.json", "done", "x")


class _LeakyClient:
    """A client whose every call fails with a message quoting a credential, as a careless transport might."""

    def bucket(self, name: str) -> Any:
        raise RuntimeError(f"401 from https://user:hunter2@storage.example/b/{name} Authorization: Bearer {TOKEN}")


def test_error_messages_never_carry_credentials() -> None:
    store = DeadLetterStore("gs://dl-bucket/dl", client=_LeakyClient())
    with pytest.raises(DeadLetterWriteError) as error:
        store.write(storage_record())
    message = str(error.value)
    assert TOKEN not in message and "hunter2" not in message and "Bearer ***" in message


def test_a_concurrent_writer_is_merged_not_overwritten(
    gcs: StorageEmulator, store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instance creates the record between our read and our upload: real GCS answers 412 (the emulator
    cannot, so the 412 is injected); we read again and merge, and both failures are counted."""
    from google.api_core.exceptions import PreconditionFailed

    other = DeadLetterStore(f"gs://{store.bucket_name}/dl", client=gcs.client())
    real_put = store._put
    calls = []

    def racing_put(*args: Any) -> None:
        calls.append(args[0])
        if len(calls) == 1:
            other.write(storage_record(reason="the other instance"))
            raise PreconditionFailed("conditionNotMet")
        real_put(*args)

    monkeypatch.setattr(store, "_put", racing_put)
    name = store.write(storage_record(now=T0 + timedelta(minutes=1), reason="ours"))
    record = store.read(name)
    assert (record.attempts, record.reason, len(calls)) == (2, "ours", 2)
    assert record.recorded_at == "2026-11-24T10:00:05.000Z"  # the other instance's record came first


def _losing_put(store: DeadLetterStore, other: DeadLetterStore, losses: int | None) -> list[str]:
    """``store``'s uploads lose the race to ``other`` (which writes the record first, then we get 412) ``losses``
    times (None: always); the calls are listed."""
    from google.api_core.exceptions import PreconditionFailed

    real_put = store._put
    calls: list[str] = []

    def racing_put(*args: Any) -> None:
        calls.append(args[0])
        if losses is None or len(calls) <= losses:
            other.write(storage_record(reason=f"the other instance, write {len(calls)}"))
            raise PreconditionFailed("conditionNotMet")
        real_put(*args)

    store._put = racing_put  # type: ignore[method-assign]
    return calls


def test_a_write_keeps_trying_after_many_lost_races_with_jittered_waits(gcs: StorageEmulator) -> None:
    """Eight writers got there first, one after the other: the ninth write still lands (it gave up after five)."""
    bucket = f"dead-letters-{next(_buckets)}"
    gcs.create_bucket(bucket)
    clock = FakeClock(wall=T0)
    store = DeadLetterStore(f"gs://{bucket}/dl", client=gcs.client(), budget_s=20, clock=clock)
    other = DeadLetterStore(f"gs://{bucket}/dl", client=gcs.client(), budget_s=20, clock=clock)
    calls = _losing_put(store, other, losses=8)
    record = store.read(store.write(storage_record(now=T0 + timedelta(minutes=1), reason="ours")))
    assert (record.attempts, record.reason, len(calls)) == (9, "ours", 9)
    assert len(clock.slept) == 8, "one wait per lost race"
    assert all(0 <= wait <= min(1.0, 0.02 * 2**n) for n, wait in enumerate(clock.slept, start=1))
    assert len(set(clock.slept)) == 8, "jittered, not a fixed schedule"


def test_a_write_that_loses_every_race_gives_up_when_the_budget_is_spent(gcs: StorageEmulator) -> None:
    bucket = f"dead-letters-{next(_buckets)}"
    gcs.create_bucket(bucket)
    clock = FakeClock(wall=T0)
    store = DeadLetterStore(f"gs://{bucket}/dl", client=gcs.client(), budget_s=5, clock=clock)
    other = DeadLetterStore(f"gs://{bucket}/dl", client=gcs.client(), budget_s=5, clock=clock)
    calls = _losing_put(store, other, losses=None)
    with pytest.raises(DeadLetterWriteError, match=r"changed by other writers \d+ times in \d+\.\d s"):
        store.write(storage_record(reason="ours"))
    assert sum(clock.slept) <= 5 and len(calls) > 5


def test_our_own_retried_upload_is_not_counted_twice(store: DeadLetterStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload landed but its answer was lost; the library's retry then gets 412: the object holds our bytes."""
    from google.api_core.exceptions import PreconditionFailed

    real_put = store._put

    def landed_then_412(*args: Any) -> None:
        real_put(*args)
        raise PreconditionFailed("conditionNotMet")

    monkeypatch.setattr(store, "_put", landed_then_412)
    name = store.write(storage_record())
    assert store.read(name).attempts == 1


def test_concurrent_requests_share_one_store(gcs: StorageEmulator, store: DeadLetterStore) -> None:
    errors: list[BaseException] = []

    def write(run_id: str) -> None:
        try:
            store.write(storage_record(run_id=run_id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=("same",)) for _ in range(12)]
    threads += [threading.Thread(target=write, args=(f"run_{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    names = gcs.objects(store.bucket_name)
    assert len(names) == 13
    assert store.read("dl/2026/11/24/ingest/same.json").attempts == 12


def test_default_client_comes_from_storage_emulator_host(gcs: StorageEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    gcs.create_bucket("env-bucket")
    for name, value in gcs.env().items():
        monkeypatch.setenv(name, value)
    store = DeadLetterStore("gs://env-bucket/dl")
    name = store.write(storage_record())
    assert [n for n, _ in store.list()] == [name]


def test_a_subprocess_writes_through_the_env_and_a_subprocess_emulator() -> None:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket("sub-bucket")
        code = (
            "from dagtrigger.deadletter import DeadLetterStore, DeadLetter\n"
            "import sys\n"
            "record = DeadLetter.from_json(sys.stdin.read())\n"
            "print(DeadLetterStore('gs://sub-bucket/dl').write(record))\n"
        )
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **emulator.env()}
        out = subprocess.run(
            [sys.executable, "-c", code],
            input=storage_record().to_json(),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert emulator.objects("sub-bucket") == [out.stdout.strip()]
