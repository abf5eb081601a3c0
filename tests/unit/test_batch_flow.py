"""Batched routes through the real pipeline: members in the Cloud Storage emulator, a fake Airflow that keeps run
states and (as Airflow 2 does) unique logical dates. The fake is for the states and faults a unit test must control;
tests/integration/test_batch_real_airflow.py runs the same path against real schedulers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dagtrigger import events, function
from dagtrigger.batch.members import MembersStore
from dagtrigger.deadletter import new_record
from dagtrigger.deadletter import proof as proof_module
from dagtrigger.outcome import OutcomeKind
from dagtrigger.pipeline import Pipeline
from dagtrigger.rules import parse_rules
from tests.support.clock import FakeClock
from tests.support.fakes import Answer, FakeAirflow, Seen
from tests.support.storage_emulator import StorageEmulator, storage_emulator

from .samples import storage_attrs, storage_data

WINDOW_START = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
BUCKET = "ops-bucket"


class StatefulFakeAirflow(FakeAirflow):
    """FakeAirflow (which reads runs back and keeps Airflow 2's logical dates unique) with settable run states."""

    def set_state(self, run_id: str, state: str) -> None:
        with self._lock:
            for (_, rid), run in self.runs.items():
                if rid == run_id:
                    run["state"] = state

    def posts(self) -> list[Seen]:
        return [s for s in self.server.requests_to("/dagRuns") if s.method == "POST"]


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        emulator.create_bucket(BUCKET)
        yield emulator


@pytest.fixture
def airflow() -> Iterator[StatefulFakeAirflow]:
    with StatefulFakeAirflow() as fake:
        yield fake


ROUTES: dict[str, Any] = {
    "routes": [
        {
            "name": "exports",
            "dag_id": "load_exports",
            "match": {"kind": "storage", "bucket": "landing", "name": {"prefix": "exports/"}},
            "conf": {"folder": "folder", "closes": "batch.window_end"},
            "batch": {"window": 60, "members": f"gs://{BUCKET}/dagtrigger-batches"},
        },
        {"name": "audit", "dag_id": "audit_every_file", "match": {"kind": "storage", "name": {"prefix": "exports/"}}},
    ]
}


def make(airflow: FakeAirflow, gcs: StorageEmulator, clock: FakeClock, routes: dict[str, Any] = ROUTES) -> Pipeline:
    """The pipeline with its one clock: event ages, windows and the batcher all read ``clock``."""
    env = {"AIRFLOW_URI": airflow.url, "DAG_ID": "unused", "AIRFLOW_AUTH": "none", "AIRFLOW_RETRY_BUDGET_SECONDS": "1"}
    base = function.build(env, clock=clock).pipeline
    members = MembersStore(gcs.client(), budget_s=3, timeout_s=2)  # real time: a real emulator answers
    return Pipeline(base.settings, base.client, parse_rules(routes, "test"), base.log, members=members, clock=clock)


def upload(name: str, generation: str = "1", at: datetime = WINDOW_START + timedelta(seconds=5), **attrs: str):
    attributes = storage_attrs(name=name, time=at.isoformat().replace("+00:00", "Z"), **attrs)
    return events.from_cloud_event(attributes, storage_data(name=name, generation=generation))


def members(gcs: StorageEmulator, prefix: str = "dagtrigger-batches/") -> dict[str, dict[str, Any]]:
    client = gcs.client()
    return {
        name: json.loads(client.bucket(BUCKET).blob(name).download_as_bytes()) for name in gcs.objects(BUCKET, prefix)
    }


@pytest.fixture(autouse=True)
def empty_bucket(gcs: StorageEmulator) -> None:
    bucket = gcs.client().bucket(BUCKET)
    for name in gcs.objects(BUCKET):
        bucket.blob(name).delete()


def test_one_run_per_folder_and_window_every_member_recorded(airflow: StatefulFakeAirflow, gcs: StorageEmulator):
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)))
    for n in range(12):
        report = pipeline.process(upload(f"exports/f{n % 3}/part-{n}.csv"))
        assert report.acknowledged, report.reason
    batch_posts = [p for p in airflow.posts() if "load_exports" in p.path]
    assert len(batch_posts) == 3  # one per folder; the audit route still gets one run per file
    assert len([p for p in airflow.posts() if "audit_every_file" in p.path]) == 12
    recorded = members(gcs)
    assert len(recorded) == 12
    body = batch_posts[0].json()
    assert body["run_after"] == "2026-11-30T10:01:00.000000+00:00" and body["logical_date"] is None
    conf = body["conf"]
    assert conf["batch"]["window_start"] == "2026-11-30T10:00:00Z" and conf["closes"] == "2026-11-30T10:01:00Z"
    assert conf["folder"] == conf["batch"]["group"] == "exports/f0"
    prefix = conf["batch"]["members"].removeprefix(f"gs://{BUCKET}/")
    mine = {name: doc for name, doc in recorded.items() if name.startswith(prefix)}
    assert len(mine) == 4 and all(
        not doc["late"] and doc["batch_run_id"] == body["dag_run_id"] for doc in mine.values()
    )
    assert sorted(doc["conf"]["name"] for doc in mine.values()) == [f"exports/f0/part-{n}.csv" for n in (0, 3, 6, 9)]
    assert all(name == f"{prefix}{doc['key']}.json" for name, doc in mine.items())


def test_redeliveries_add_no_member_and_no_post(airflow: StatefulFakeAirflow, gcs: StorageEmulator) -> None:
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)))
    routes = {"routes": ROUTES["routes"][:1]}
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), routes)
    pipeline.process(upload("exports/a/1.csv"))
    again = pipeline.process(upload("exports/a/1.csv", id="a-new-delivery-id"))
    other_instance = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=20)), routes)
    third = other_instance.process(upload("exports/a/1.csv", id="third-delivery"))
    assert again.acknowledged and third.kind is OutcomeKind.DUPLICATE
    assert len(members(gcs)) == 1
    assert len(airflow.runs) == 1 and len(airflow.posts()) == 2  # one per instance
    overwrite = pipeline.process(upload("exports/a/1.csv", generation="2"))  # a new object version is a new member
    assert overwrite.acknowledged and len(members(gcs)) == 2 and len(airflow.posts()) == 2


def test_concurrent_first_members_share_one_post(airflow: StatefulFakeAirflow, gcs: StorageEmulator) -> None:
    airflow.faults = []
    pipeline = make(
        airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), {"routes": ROUTES["routes"][:1]}
    )
    reports = []
    threads = [
        threading.Thread(target=lambda n=n: reports.append(pipeline.process(upload(f"exports/same/{n}.csv"))))
        for n in range(24)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(reports) == 24 and all(r.acknowledged for r in reports)
    assert len(airflow.posts()) == 1
    assert len(members(gcs)) == 24


def test_late_member_goes_into_the_open_window_flagged_late(airflow: StatefulFakeAirflow, gcs: StorageEmulator):
    routes = {"routes": ROUTES["routes"][:1]}
    clock = FakeClock(wall=WINDOW_START + timedelta(seconds=10))
    pipeline = make(airflow, gcs, clock, routes)
    first = pipeline.process(upload("exports/a/1.csv"))
    run_id = first.results[0].run_id
    # The window closed and its run started; then a member with an event time inside it arrives (delayed delivery).
    airflow.set_state(run_id, "running")
    clock.set(WINDOW_START + timedelta(seconds=75))
    late = pipeline.process(upload("exports/a/2.csv", at=WINDOW_START + timedelta(seconds=30)))
    assert late.acknowledged and late.results[0].run_id != run_id
    assert f"late: run {run_id} had started" in late.results[0].outcome.reason
    recorded = members(gcs)
    assert len(recorded) == 3  # 1.csv and 2.csv in the first batch, 2.csv again in the next one
    late_docs = [d for d in recorded.values() if d["late"]]
    assert len(late_docs) == 1 and late_docs[0]["conf"]["name"] == "exports/a/2.csv"
    assert late_docs[0]["window_start"] == "2026-11-30T10:01:00Z"
    assert late_docs[0]["batch_run_id"] == late.results[0].run_id
    assert (("load_exports", late.results[0].run_id)) in airflow.runs
    # While the run is still queued after its window ended, a member just joins it (nothing late).
    airflow.set_state(late.results[0].run_id, "queued")
    clock.set(WINDOW_START + timedelta(seconds=125))
    on_time = pipeline.process(upload("exports/a/3.csv", at=WINDOW_START + timedelta(seconds=70)))
    assert on_time.results[0].run_id == late.results[0].run_id
    assert not any(d["late"] for n, d in members(gcs).items() if "3.csv" in json.dumps(d["conf"]))


def test_failed_member_write_is_not_acknowledged_and_posts_nothing(airflow: StatefulFakeAirflow) -> None:
    with storage_emulator() as gone:
        gone.create_bucket(BUCKET)
        pipeline = make(
            airflow, gone, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), {"routes": ROUTES["routes"][:1]}
        )
        gone.stop()
        report = pipeline.process(upload("exports/a/1.csv"))
    assert report.kind is OutcomeKind.RETRY and "could not record the member" in report.reason
    assert airflow.posts() == []


def test_event_time_beyond_the_skew_fails_and_is_dead_lettered(airflow: StatefulFakeAirflow, gcs: StorageEmulator):
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START), {"routes": ROUTES["routes"][:1]})
    report = pipeline.process(upload("exports/a/1.csv", at=WINDOW_START + timedelta(hours=2)))
    assert report.kind is OutcomeKind.FAILED and "ahead" in report.reason
    assert airflow.posts() == [] and members(gcs) == {}


def test_airflow_2_logical_dates_skip_a_taken_one(gcs: StorageEmulator) -> None:
    with StatefulFakeAirflow(version="v1") as airflow:
        pipeline = make(
            airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), {"routes": ROUTES["routes"][:1]}
        )
        first = pipeline.process(upload("exports/a/1.csv"))
        body = airflow.posts()[0].json()
        assert "run_after" not in body
        logical = datetime.fromisoformat(body["logical_date"])
        assert WINDOW_START + timedelta(seconds=60) <= logical < WINDOW_START + timedelta(seconds=61)
        # Another run (another group's, or a user's) holds the first candidate date of folder b.
        from dagtrigger.batch.placement import v1_logical_dates
        from dagtrigger.batch.windows import Window

        taken = next(v1_logical_dates("exports", "exports/b", Window(WINDOW_START, 60)))
        airflow.runs[("load_exports", "someone_else")] = {"logical_date": taken.isoformat(timespec="microseconds")}
        second = pipeline.process(upload("exports/b/1.csv"))
        assert first.acknowledged and second.kind is OutcomeKind.DONE
        bodies = [p.json() for p in airflow.posts()]
        assert len(bodies) == 3 and bodies[1]["dag_run_id"] == bodies[2]["dag_run_id"]
        assert bodies[1]["logical_date"] != bodies[2]["logical_date"]
        # A redelivery in a new instance: its 409 is for our own run (found by id), not a collision.
        again = make(
            airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=20)), {"routes": ROUTES["routes"][:1]}
        )
        assert again.process(upload("exports/a/1.csv", id="redelivered")).kind is OutcomeKind.DUPLICATE


def test_replay_of_a_member_goes_through_the_same_batching(
    airflow: StatefulFakeAirflow, gcs: StorageEmulator, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(proof_module, "check_object", lambda obj: None)  # a fake Cloud Storage confirming the object
    routes = {"routes": ROUTES["routes"][:1]}
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), routes)
    airflow.faults = [Answer(404, {"detail": "DAG not found"})]
    event = upload("exports/a/1.csv")
    failed = pipeline.process(event)
    assert failed.kind is OutcomeKind.FAILED and "batch run batch__exports" in failed.reason
    assert failed.results[0].run_id.startswith("gcs_finalized__")  # dead-lettered under the member's own identity
    record = new_record(
        event, dag_id="load_exports", route="exports", run_id=failed.results[0].run_id, reason="x", now=WINDOW_START
    )
    outcome = pipeline.replay(record).outcome
    assert outcome.kind is OutcomeKind.DONE
    assert len(members(gcs)) == 1
    assert [p.json()["dag_run_id"] for p in airflow.posts() if p.json()].pop().startswith("batch__exports__exports_a__")


def test_markers_and_manifests_on_a_batched_route(
    airflow: StatefulFakeAirflow, gcs: StorageEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only marker objects become members; each member carries its folder's manifest; the run conf templates see it."""
    monkeypatch.setattr("dagtrigger.gcs._client", gcs.client())  # the process's client, for the manifest reads
    if "landing" not in [b.name for b in gcs.client().list_buckets()]:
        gcs.create_bucket("landing")
    routes = {
        "routes": [
            {
                "name": "done-folders",
                "dag_id": "load_exports",
                "match": {"kind": "storage", "bucket": "landing"},
                "marker": "_SUCCESS",
                "manifest": {"object": "concat(folder, '/manifest.json')", "into": "manifest"},
                "conf": {"first_manifest_rows": "manifest.rows"},
                "batch": {"window": 60, "group": "bucket", "members": f"gs://{BUCKET}/markers"},
            }
        ]
    }
    landing = gcs.client().bucket("landing")
    for folder, rows in (("exports/a", 1), ("exports/b", 2)):
        landing.blob(f"{folder}/manifest.json").upload_from_string(json.dumps({"rows": rows}))
    pipeline = make(airflow, gcs, FakeClock(wall=WINDOW_START + timedelta(seconds=10)), routes)
    ignored = pipeline.process(upload("exports/a/part-1.csv"))
    reports = [pipeline.process(upload(f"{folder}/_SUCCESS")) for folder in ("exports/a", "exports/b")]
    assert ignored.kind is OutcomeKind.IGNORED and [r.acknowledged for r in reports] == [True, True]
    assert reports[0].results[0].run_id == reports[1].results[0].run_id  # one group: the bucket
    recorded = members(gcs, "markers/")
    assert sorted(doc["conf"]["manifest"]["rows"] for doc in recorded.values()) == [1, 2]
    assert len(airflow.posts()) == 1 and airflow.posts()[0].json()["conf"]["first_manifest_rows"] == 1
