"""The pipeline in process against a fake Airflow: outcomes, conf cap, ignore rules and what gets logged."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dagtrigger import events, function, logs
from dagtrigger.clock import parse_utc
from dagtrigger.outcome import OutcomeKind
from dagtrigger.pipeline import Pipeline
from tests.support.clock import FakeClock
from tests.support.fakes import Answer, FakeAirflow

from .samples import now_iso, pubsub_attrs, pubsub_data, storage_attrs, storage_data

TOKEN = "static-token-that-must-never-be-logged-0123456789"


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow() as fake:
        yield fake


def make(airflow: FakeAirflow, **env: str) -> tuple[Pipeline, io.StringIO]:
    base = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "example_dag",
        "AIRFLOW_AUTH": "bearer",
        "AIRFLOW_TOKEN": TOKEN,
        "AIRFLOW_RETRY_BUDGET_SECONDS": "1",
        "AIRFLOW_TIMEOUT_SECONDS": "2",
    }
    # Retries wait on a fake clock; its wall clock is when the sample events say they happened (samples.now_iso).
    clock = FakeClock(wall=parse_utc(now_iso()))
    pipeline = function.build({**base, **env}, clock=clock).pipeline
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter(pipeline.settings.secrets()))
    pipeline.log.handlers = [handler]
    return pipeline, stream


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def storage_event(**attrs: str) -> events.Event:
    return events.from_cloud_event(storage_attrs(**attrs), storage_data())


def test_done_then_duplicate(airflow: FakeAirflow) -> None:
    pipeline, stream = make(airflow)
    first = pipeline.process(storage_event())
    again = pipeline.process(storage_event(id="redelivered-with-new-id"))
    assert (first.kind, again.kind) == (OutcomeKind.DONE, OutcomeKind.DUPLICATE)
    assert len(airflow.runs) == 1
    records = lines(stream)
    assert [r["outcome"] for r in records] == ["done", "duplicate"]
    assert all(r["severity"] == "INFO" and r["dag_id"] == "example_dag" and r["run_id"] for r in records)
    assert records[0]["event_id"] == "7412583904123456"
    seen = airflow.server.requests_to("/dagRuns")[0]
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in stream.getvalue()


def test_missing_dag_is_acknowledged_with_an_error(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(404, {"detail": "DAG with dag_id: 'example_dag' not found"})]
    pipeline, stream = make(airflow)
    report = pipeline.process(storage_event())
    assert report.kind is OutcomeKind.FAILED and report.acknowledged
    record = lines(stream)[-1]
    assert record["severity"] == "ERROR" and record["status"] == 404
    assert "not found" in str(record["message"]) and "example_dag" in str(record["message"])


def test_permission_denied_is_redelivered_with_the_fix_key(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(403, {"detail": "Forbidden"})]
    pipeline, stream = make(airflow)
    report = pipeline.process(storage_event())
    assert report.kind is OutcomeKind.RETRY and not report.acknowledged
    message = str(lines(stream)[-1]["message"])
    # Short, with the key whose row in docs/troubleshooting.md holds the whole fix (Composer role, registration).
    assert "Op role" in message and "[airflow-403]" in message


def test_persistent_5xx_means_redeliver(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(503, "<html>down</html>")] * 50
    pipeline, _ = make(airflow)
    assert pipeline.process(storage_event()).kind is OutcomeKind.RETRY


def test_oversized_conf_is_not_sent(airflow: FakeAirflow) -> None:
    pipeline, _stream = make(airflow, MAX_CONF_BYTES="100")
    report = pipeline.process(storage_event())
    assert report.kind is OutcomeKind.FAILED
    assert "MAX_CONF_BYTES=100" in report.reason
    assert not airflow.server.requests_to("/dagRuns")


def test_other_storage_actions_are_ignored_unless_enabled(airflow: FakeAirflow) -> None:
    deleted = storage_event(type="google.cloud.storage.object.v1.deleted")
    pipeline, stream = make(airflow)
    assert pipeline.process(deleted).kind is OutcomeKind.IGNORED
    assert lines(stream)[-1]["severity"] == "INFO"
    enabled, _ = make(airflow, STORAGE_EVENT_TYPES="finalized,deleted")
    assert enabled.process(deleted).kind is OutcomeKind.DONE


def test_unknown_event_type_is_acknowledged_with_a_warning(airflow: FakeAirflow) -> None:
    pipeline, stream = make(airflow)
    report = pipeline.process(events.from_cloud_event(storage_attrs(type="com.example.other"), {}))
    assert report.kind is OutcomeKind.IGNORED and report.acknowledged
    assert lines(stream)[-1]["severity"] == "WARNING"


def test_pubsub_message(airflow: FakeAirflow) -> None:
    pipeline, _ = make(airflow)
    report = pipeline.process(events.from_cloud_event(pubsub_attrs(), pubsub_data(b'{"table": "t"}')))
    assert report.kind is OutcomeKind.DONE
    (body,) = airflow.runs.values()
    assert body["conf"]["table"] == "t" and body["conf"]["_event"]["message_id"] == "11223344556677"


def test_formatter_masks_credentials_anywhere() -> None:
    formatter = logs.JsonFormatter(["hunter2-password"])
    record = logging.LogRecord("x", logging.INFO, "", 0, "auth Bearer abcdefghijk and hunter2-password", (), None)
    text = formatter.format(record)
    assert "abcdefghijk" not in text and "hunter2-password" not in text
    assert json.loads(text)["severity"] == "INFO"


class MemoryStore:
    """A dead-letter store double that keeps records in memory (the real one is tested against an emulator)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.records: list[object] = []

    def write(self, record: object) -> str:
        from dagtrigger.deadletter import DeadLetterWriteError

        if self.fail:
            raise DeadLetterWriteError("bucket refused the write")
        self.records.append(record)
        return f"dl/{len(self.records)}.json"


def test_permanent_failure_is_recorded_then_acknowledged(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(404, {"detail": "not found"})]
    pipeline, stream = make(airflow)
    store = MemoryStore()
    pipeline.dead_letters = store  # type: ignore[assignment]
    attrs = storage_attrs()
    report = pipeline.process(events.from_cloud_event(attrs, storage_data()))
    assert report.kind is OutcomeKind.FAILED and report.acknowledged
    (record,) = store.records
    assert record.dag_id == "example_dag" and record.status == 404  # type: ignore[attr-defined]
    assert lines(stream)[-1]["dead_letter"] == "dl/1.json"


def test_unwritable_dead_letter_means_redeliver(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(404, {"detail": "not found"})]
    pipeline, _ = make(airflow)
    pipeline.dead_letters = MemoryStore(fail=True)  # type: ignore[assignment]
    attrs = storage_attrs()
    report = pipeline.process(events.from_cloud_event(attrs, storage_data()))
    assert report.kind is OutcomeKind.RETRY and "could not be written" in report.reason


def test_old_events_stop_being_retried(airflow: FakeAirflow) -> None:
    airflow.faults = [Answer(503, "down")] * 50
    pipeline, _ = make(airflow, MAX_EVENT_AGE_SECONDS="3600")
    store = MemoryStore()
    pipeline.dead_letters = store  # type: ignore[assignment]
    young = storage_attrs()
    assert pipeline.process(events.from_cloud_event(young, storage_data())).kind is OutcomeKind.RETRY
    old = storage_attrs(time="2020-01-01T00:00:00Z")
    report = pipeline.process(events.from_cloud_event(old, storage_data()))
    assert report.kind is OutcomeKind.FAILED and "MAX_EVENT_AGE_SECONDS=3600" in report.reason
    assert len(store.records) == 1


def test_in_flight_limit_queues_calls(airflow: FakeAirflow) -> None:
    import threading
    import time as clock

    active, peak = 0, 0
    lock = threading.Lock()
    original = airflow.server.handler

    def slow(seen):  # type: ignore[no-untyped-def]
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        clock.sleep(0.05)
        with lock:
            active -= 1
        return original(seen)

    airflow.server.handler = slow
    pipeline, _ = make(airflow, AIRFLOW_MAX_IN_FLIGHT="2")
    names = [f"f{n}.csv" for n in range(12)]
    threads = [
        threading.Thread(
            target=pipeline.process, args=(events.from_cloud_event(storage_attrs(name=n), storage_data(name=n)),)
        )
        for n in names
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(airflow.runs) == 12
    assert peak <= 2


def test_the_raw_delivery_travels_on_the_event_and_is_copied_only_for_a_dead_letter(airflow: FakeAirflow) -> None:
    # The stored form (JSON, base64) is built when a dead letter is written, not for every request.
    pipeline, _ = make(airflow)
    ok = events.from_cloud_event(storage_attrs(), storage_data())
    assert pipeline.process(ok).kind is OutcomeKind.DONE
    assert ok.delivery is not None and "raw" not in vars(ok.delivery)  # never built
    airflow.faults = [Answer(404, {"detail": "not found"})]
    store = MemoryStore()
    pipeline.dead_letters = store  # type: ignore[assignment]
    failing = events.from_cloud_event(storage_attrs(name="other.csv"), storage_data(name="other.csv"))
    assert pipeline.process(failing).kind is OutcomeKind.FAILED
    (record,) = store.records
    assert record.transport == "cloudevent" and record.raw["data"]["name"] == "other.csv"  # type: ignore[attr-defined]


def test_pubsub_data_is_decoded_once_per_event_whatever_the_routes(
    airflow: FakeAirflow, tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    routes = tmp_path / "routes.yaml"  # type: ignore[operator]
    routes.write_text(
        "routes:\n"
        "  - {name: a, dag_id: dag_a, match: {kind: pubsub, body: {table: orders}}, conf: {t: body.table}}\n"
        "  - {name: b, dag_id: dag_b, match: {kind: pubsub, body: {table: orders}}, conf: {n: message.data.rows}}\n"
    )
    pipeline, _ = make(airflow, ROUTES_FILE=str(routes), DAG_ID="")
    decoded: list[object] = []
    original = events.parse_json
    monkeypatch.setattr(events, "parse_json", lambda raw, what: decoded.append(what) or original(raw, what))
    report = pipeline.process(events.from_cloud_event(pubsub_attrs(), pubsub_data(b'{"table": "orders", "rows": 3}')))
    assert report.kind is OutcomeKind.DONE and len(report.results) == 2
    assert decoded == ["message data"]  # routing, both confs and both template contexts share one decode
