"""Production-shaped Airflow: PostgreSQL metadata DB and a running scheduler (plus dag-processor and triggerer on 3).

A real CloudEvent through a real functions-framework process must end as a *successful* run whose task saw the
conf, read back from Airflow's own API (run state, task-instance state, task log).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dagtrigger.send import storage_event
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess

pytestmark = pytest.mark.integration

DAG_ID = "dagtrigger_example"
RUN_DEADLINE_S = 120.0


@pytest.fixture(scope="module", params=[2, 3], ids=["airflow2", "airflow3"])
def airflow_pg(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    major = int(request.param)
    workdir = tmp_path_factory.mktemp(f"airflow{major}-pg")
    with AirflowServer(major, workdir, database="postgres", scheduler=True, auth="password") as server:
        yield server


def _wait_for_final_state(airflow: AirflowServer, run_id: str) -> dict[str, object]:
    run = airflow.wait_run(DAG_ID, run_id, RUN_DEADLINE_S)
    assert run is not None and run["state"] in ("success", "failed"), f"run {run_id} not finished: {run}"
    return run


def test_event_runs_the_dag_to_success(airflow_pg: AirflowServer, tmp_path: Path) -> None:
    env = {
        "AIRFLOW_URI": airflow_pg.url,
        "DAG_ID": DAG_ID,
        "AIRFLOW_AUTH": "basic" if airflow_pg.major == 2 else "airflow-jwt",
        "AIRFLOW_USERNAME": "op",
        "AIRFLOW_PASSWORD": "op",
    }
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        event = storage_event(function.url, "pg-landing", "incoming/pg/orders.csv")
        answer = function.post(headers=dict(event.headers), data=event.body)
        assert answer.status_code == 200, answer.text
    runs = airflow_pg.list_runs(DAG_ID)
    assert len(runs) == 1
    run_id = runs[0]["dag_run_id"]
    run = _wait_for_final_state(airflow_pg, run_id)
    assert run["state"] == "success"
    prefix = f"{airflow_pg.api_prefix}/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"
    log = airflow_pg.request("GET", f"{prefix}/print_conf/logs/1")
    assert log.status == 200
    assert "incoming/pg/orders.csv" in str(log.body)  # the conf the task received names the object
