"""The warm-up in a real functions-framework process: it runs in the forked worker (not in gunicorn's master before
the port opens), reaches Airflow before any event arrives, and the first event is then served without a probe."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dagtrigger.send import storage_event
from devtools.fakes import Answer, FakeServer, Seen
from devtools.localfunction import FunctionProcess

pytestmark = pytest.mark.integration


def _airflow(seen: Seen) -> Answer:
    if seen.path == "/api/v2/version":
        return Answer(200, {"version": "3.3.2"})
    return Answer(200, {"dag_run_id": "r", "state": "queued"})


@pytest.mark.parametrize("setting", ["1", "0"])
def test_worker_warms_up_before_the_first_event(tmp_path: Path, setting: str) -> None:
    with FakeServer(_airflow) as airflow:
        env = {
            "AIRFLOW_URI": airflow.url,
            "DAG_ID": "dagtrigger_example",
            "AIRFLOW_AUTH": "bearer",
            "AIRFLOW_TOKEN": "static-token",
            "K_SERVICE": "dagtrigger",
            "DAGTRIGGER_WARMUP": setting,
        }
        with FunctionProcess("trigger_event", env, tmp_path) as function:
            deadline = time.monotonic() + 10
            while setting == "1" and not airflow.seen and time.monotonic() < deadline:
                time.sleep(0.05)
            before = [seen.path for seen in airflow.seen]
            event = storage_event(function.url, "warm", "incoming/warm.csv")
            answer = function.post(headers=dict(event.headers), data=event.body, timeout=20)
        assert answer.status_code == 200, answer.text
        after = [seen.path for seen in airflow.seen][len(before) :]
    if setting == "1":
        assert before and set(before) == {"/api/v2/version"}, before  # warmed with no event sent
        assert after == ["/api/v2/dags/dagtrigger_example/dagRuns"], after  # no probe on the first event's path
    else:
        assert before == [], before
        assert after == ["/api/v2/version", "/api/v2/dags/dagtrigger_example/dagRuns"], after
