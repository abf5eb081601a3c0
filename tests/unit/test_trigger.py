"""A 409 is not proof that our run exists (trigger.py), on every path, against a fake Airflow that injects the clash.

On Airflow 2 ``(dag_id, logical_date)`` is unique and a trigger without a date gets the server's now(): the fake's
``undated_logical_date`` pins that now() to one instant, so a run someone else created holds the date our trigger
gets. tests/integration/test_logical_date_clash.py does the same against a real Airflow 2.11.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from dagtrigger import function
from dagtrigger.clock import parse_utc
from dagtrigger.deadletter import new_record
from dagtrigger.deadletter import proof as proof_module
from dagtrigger.events import StorageObject
from dagtrigger.outcome import OutcomeKind
from dagtrigger.pipeline import Pipeline
from dagtrigger.run_id import MAX_OFFSET_PROBES, logical_dates, run_id_for
from tests.support.clock import FakeClock
from tests.support.fakes import Answer, FakeAirflow

from .samples import now_iso, pubsub_event, storage_event

INSTANT = "2026-11-24T10:00:00.000000+00:00"  # what the fake Airflow 2 gives every run posted without a date


@pytest.fixture
def airflow2() -> Iterator[FakeAirflow]:
    with FakeAirflow(version="v1", undated_logical_date=INSTANT) as fake:
        yield fake


def make(airflow: FakeAirflow, clock: FakeClock | None = None) -> Pipeline:
    env = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "example_dag",
        "AIRFLOW_AUTH": "bearer",
        "AIRFLOW_TOKEN": "t",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "1",
        "AIRFLOW_TIMEOUT_SECONDS": "2",
    }
    return function.build(env, clock=clock or FakeClock(wall=parse_utc(now_iso()))).pipeline


def posts(airflow: FakeAirflow) -> list[dict[str, object]]:
    return [s.json() for s in airflow.server.requests_to("/dagRuns") if s.method == "POST"]


def reads(airflow: FakeAirflow) -> int:
    return sum(1 for s in airflow.server.seen if s.method == "GET" and "/dagRuns/" in s.path)


def test_a_run_holding_the_date_airflow_picks_does_not_swallow_the_event(airflow2: FakeAirflow) -> None:
    airflow2.runs[("example_dag", "someone_else")] = {"dag_run_id": "someone_else", "logical_date": INSTANT}
    wall = parse_utc("2026-11-24T10:00:07.250000+00:00")
    report = make(airflow2, FakeClock(wall=wall)).process(storage_event())
    (result,) = report.results
    assert report.kind is OutcomeKind.DONE, report.reason
    assert ("example_dag", result.run_id) in airflow2.runs, "the event has its run"
    first, second = posts(airflow2)
    assert "logical_date" not in first, "the first attempt lets Airflow pick the date, as Google's sample does"
    ours = datetime.fromisoformat(str(second["logical_date"]))
    assert wall - timedelta(seconds=2) < ours < wall, "a date of our own in the second before now, never ahead"
    assert ours == next(logical_dates(parse_utc("2026-11-24T10:00:06+00:00"), "example_dag", result.run_id))
    assert reads(airflow2) == 1 and "another run held the date Airflow picked" in result.outcome.reason


def test_two_events_in_one_instant_get_two_runs(airflow2: FakeAirflow) -> None:
    pipeline = make(airflow2)
    first = pipeline.process(storage_event(name="a.csv"))
    second = pipeline.process(storage_event(name="b.csv"))
    assert (first.kind, second.kind) == (OutcomeKind.DONE, OutcomeKind.DONE)
    assert len(airflow2.runs) == 2


def test_a_redelivery_is_a_duplicate_once_its_run_is_read(airflow2: FakeAirflow) -> None:
    pipeline = make(airflow2)
    assert pipeline.process(storage_event()).kind is OutcomeKind.DONE
    again = pipeline.process(storage_event(id="redelivered"))
    assert again.kind is OutcomeKind.DUPLICATE
    assert len(posts(airflow2)) == 2 and reads(airflow2) == 1 and len(airflow2.runs) == 1


def test_every_date_of_our_own_taken_is_a_retry_not_a_duplicate(airflow2: FakeAirflow) -> None:
    clock = FakeClock(wall=parse_utc(now_iso()))
    pipeline = make(airflow2, clock)
    event = storage_event()
    run_id = run_id_for(event)
    airflow2.runs[("example_dag", "x")] = {"dag_run_id": "x", "logical_date": INSTANT}
    second = clock.now().replace(microsecond=0) - timedelta(seconds=1)
    for n, date in enumerate(logical_dates(second, "example_dag", run_id)):
        airflow2.runs[("example_dag", f"other{n}")] = {"logical_date": date.isoformat(timespec="microseconds")}
    report = pipeline.process(event)
    assert report.kind is OutcomeKind.RETRY and "[airflow-409-conflict]" in report.reason
    assert len(posts(airflow2)) == 1 + MAX_OFFSET_PROBES  # Airflow's now(), then each date of our own
    assert ("example_dag", run_id) not in airflow2.runs


def test_airflow_3_409_without_our_run_is_sent_again() -> None:
    with FakeAirflow(version="v2") as airflow:
        airflow.faults = [Answer(409, {"detail": "Unique constraint violation"})]
        report = make(airflow).process(pubsub_event(b"{}"))
        assert report.kind is OutcomeKind.DONE, report.reason
        assert len(airflow.runs) == 1 and reads(airflow) == 1
        assert all(p["logical_date"] is None for p in posts(airflow))


def test_airflow_3_409s_that_never_show_our_run_are_retried_later() -> None:
    with FakeAirflow(version="v2") as airflow:
        airflow.faults = [Answer(409, {"detail": "Conflict"}) for _ in range(5)]
        report = make(airflow).process(pubsub_event(b"{}"))
        assert report.kind is OutcomeKind.RETRY and "[airflow-409-conflict]" in report.reason
        assert airflow.runs == {}


def test_a_409_whose_run_cannot_be_read_is_retried_later() -> None:
    with FakeAirflow(version="v2") as airflow:
        pipeline = make(airflow)
        assert pipeline.process(pubsub_event(b"{}")).kind is OutcomeKind.DONE
        airflow.server.handler = lambda seen: (
            Answer(403, {"detail": "Forbidden"}) if seen.method == "GET" else airflow._answer(seen)
        )
        report = pipeline.process(pubsub_event(b"{}"))
        assert report.kind is OutcomeKind.RETRY and "403" in report.reason


def test_replay_goes_through_the_same_check(airflow2: FakeAirflow, monkeypatch: pytest.MonkeyPatch) -> None:
    airflow2.runs[("example_dag", "someone_else")] = {"dag_run_id": "someone_else", "logical_date": INSTANT}
    event = storage_event()
    record = new_record(
        event, dag_id="example_dag", route="default", run_id="recorded", reason="x", now=parse_utc(INSTANT)
    )
    checked: list[StorageObject] = []  # a fake Cloud Storage that confirms every object (the real check: security/)
    monkeypatch.setattr(proof_module, "check_object", checked.append)
    outcome = make(airflow2).replay(record).outcome
    assert outcome.kind is OutcomeKind.DONE, outcome.reason
    assert checked == [event.storage]  # replay asked Cloud Storage about the recorded object before sending
    assert ("example_dag", run_id_for(event)) in airflow2.runs  # the run id of today's route, not the record's
