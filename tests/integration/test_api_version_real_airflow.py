"""AIRFLOW_API_VERSION against real Airflow 2 (API v1) and 3 (API v2): a configured version skips the probe, and a
wrong one is corrected at the first 404 (the event still becomes a run), with a warning naming the setting."""

from __future__ import annotations

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


@pytest.mark.parametrize("which", ["right", "wrong"])
def test_a_configured_api_version_triggers_and_a_wrong_one_is_corrected(
    airflow: AirflowServer, tmp_path: Path, which: str
) -> None:
    served = "v1" if airflow.major == 2 else "v2"
    configured = served if which == "right" else ("v2" if served == "v1" else "v1")
    env = function_env(airflow, AIRFLOW_API_VERSION=configured, DAGTRIGGER_WARMUP="1")
    name = f"landing/api-version/{which}-{airflow.major}.csv"
    ce = storage_attrs(name=name, datacontenttype="application/json")
    data = storage_data(name=name, generation="1764000000000123")
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        response = function.send_event(ce, data)
        assert response.status_code == 200, (response.text, function.tail())
        assert response.json()["outcome"] == "done", (response.text, function.tail())
        logs = function.logs()
    run = airflow.get_run(DAG, run_id_for(events.from_cloud_event(ce, data)))
    assert run is not None
    warnings = [line["message"] for line in logs if "[api-version-mismatch]" in line.get("message", "")]
    if which == "right":
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"AIRFLOW_API_VERSION={configured}" in warnings[0], warnings
        assert f"using {served}" in warnings[0]
