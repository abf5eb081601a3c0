"""A 409 is not proof that our run exists: real Airflow 2.11, where ``(dag_id, logical_date)`` is unique too.

A trigger without a logical date gets Airflow's now(); the web server here loads a test plugin
(tests/support/airflow_plugins/pinned_now.py) that pins that now() to one instant, so every such trigger happens "in
the same instant" (apache/airflow#28486), deterministically. Before trigger.py, the second event's 409 counted as a
duplicate and the event was acknowledged without a run.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from dagtrigger import events
from dagtrigger.run_id import run_id_for
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.support.function_env import function_env
from tests.unit.samples import storage_attrs, storage_data

pytestmark = pytest.mark.integration
DAG = "dagtrigger_example"
PINNED = "2026-11-24T10:00:00+00:00"
PLUGINS = Path(__file__).resolve().parents[1] / "support" / "airflow_plugins"


@pytest.fixture(scope="module")
def airflow2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    extra = {"AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS), "DAGTRIGGER_TEST_PINNED_NOW": PINNED}
    server = AirflowServer(2, tmp_path_factory.mktemp("airflow2-pinned"), auth="password", extra_env=extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def functions(airflow2: AirflowServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[FunctionProcess]]:
    """Two instances, as Cloud Run scales out; Airflow 2 on SQLite takes one writer, so one call in flight each."""
    env = function_env(airflow2)
    with (
        FunctionProcess("trigger_event", env, tmp_path_factory.mktemp("fn-a")) as a,
        FunctionProcess("trigger_event", env, tmp_path_factory.mktemp("fn-b")) as b,
    ):
        yield [a, b]


@pytest.fixture
def holder(airflow2: AirflowServer) -> None:
    """A run someone else created without a logical date: it holds the pinned instant (409: it already does)."""
    answer = airflow2.request("POST", f"/api/v1/dags/{DAG}/dagRuns", {"dag_run_id": "someone_else"})
    assert answer.status in (200, 409), answer.body


def upload(name: str) -> tuple[dict[str, str], dict[str, str]]:
    ce = storage_attrs(name=name, datacontenttype="application/json")
    return ce, storage_data(name=name, generation="1764000000000001")


def run_id(ce: dict[str, str], data: dict[str, str]) -> str:
    return run_id_for(events.from_cloud_event(ce, data))


def test_the_plugin_pins_the_instant(airflow2: AirflowServer) -> None:
    """The control: without it the test below would prove nothing."""
    first = airflow2.request("POST", f"/api/v1/dags/{DAG}/dagRuns", {"dag_run_id": "control_1"})
    second = airflow2.request("POST", f"/api/v1/dags/{DAG}/dagRuns", {"dag_run_id": "control_2"})
    assert first.status == 200 and datetime.fromisoformat(first.body["logical_date"]) == datetime.fromisoformat(PINNED)
    assert second.status == 409 and "logical date" in str(second.body)
    assert airflow2.get_run(DAG, "control_2") is None


def test_a_run_holding_the_instant_does_not_swallow_the_event(
    airflow2: AirflowServer, functions: list[FunctionProcess], holder: None
) -> None:
    ce, data = upload("clash/holder-present.csv")
    response = functions[0].send_event(ce, data)
    assert response.status_code == 200, response.text
    run = airflow2.get_run(DAG, run_id(ce, data))
    assert run is not None, "the event was acknowledged: its run must exist"
    assert datetime.fromisoformat(run["logical_date"]) != datetime.fromisoformat(PINNED)
    again = functions[1].send_event({**ce, "id": "redelivered"}, data)
    assert again.status_code == 200
    outcomes = [e["outcome"] for f in functions for e in f.logs() if e.get("run_id") == run_id(ce, data)]
    assert sorted(outcomes) == ["done", "duplicate"]


def test_concurrent_events_and_redeliveries_in_one_instant_get_one_run_each(
    airflow2: AirflowServer, functions: list[FunctionProcess], holder: None
) -> None:
    uploads = [upload(f"clash/burst-{n}.csv") for n in range(6)]
    sends = [(f, ce, data) for ce, data in uploads for f in functions]  # each event to both instances
    with ThreadPoolExecutor(len(sends)) as pool:
        statuses = list(pool.map(lambda s: s[0].send_event(s[1], s[2]).status_code, sends))
    assert statuses == [200] * len(sends)
    runs = {r["dag_run_id"]: r for r in airflow2.list_runs(DAG)}
    for ce, data in uploads:
        assert run_id(ce, data) in runs, f"{data['name']} acknowledged without a run"
    dates = [runs[run_id(ce, data)]["logical_date"] for ce, data in uploads]
    assert len(set(dates)) == len(dates)
