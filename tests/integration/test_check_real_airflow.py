"""``python -m dagtrigger check`` against real Airflow 2.11 (API v1) and 3.3 (API v2) in password mode.

Op passes, Viewer is told to get Op, a paused DAG is a loud warning, a missing DAG a failure with its fix — and the
permission probe never creates a run (counted before and after on the server).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagtrigger.check import CheckReport, Status, Symptom, run_check
from devtools.localairflow import AirflowServer
from tests.support.function_env import function_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE, OTHER, PAUSED = "dagtrigger_example", "dagtrigger_other", "dagtrigger_paused"


def run_counts(airflow: AirflowServer, *dag_ids: str) -> dict[str, int]:
    return {dag_id: len(airflow.list_runs(dag_id)) for dag_id in dag_ids}


def statuses(report: CheckReport) -> dict[str, Status]:
    return {step.name: step.status for step in report.steps}


def test_op_passes_every_step_and_creates_no_run(airflow: AirflowServer) -> None:
    before = run_counts(airflow, EXAMPLE)
    report = run_check(function_env(airflow, "op"))
    assert report.exit_code == 0 and all(s.status is Status.OK for s in report.steps), report.render()
    assert list(statuses(report)) == [
        "configuration",
        "Airflow's API server stays under its capacity",
        "identity",
        "reachable",
        "API version",
        "authentication",
        f"DAG {EXAMPLE!r} exists",
        f"DAG {EXAMPLE!r} is unpaused",
        f"may trigger {EXAMPLE!r}",
    ]
    version = next(s for s in report.steps if s.name == "API version")
    assert version.detail.startswith(f"{'v2' if airflow.major == 3 else 'v1'} (Airflow {airflow.version}")
    probe = report.steps[-1]
    assert f"({422 if airflow.major == 3 else 400})" in probe.detail and "no run was created" in probe.detail
    assert run_counts(airflow, EXAMPLE) == before


def test_viewer_is_told_to_get_op_and_creates_no_run(airflow: AirflowServer) -> None:
    before = run_counts(airflow, EXAMPLE)
    report = run_check(function_env(airflow, "viewer"))
    step = report.steps[-1]
    assert (step.name, step.status, step.symptom) == (f"may trigger {EXAMPLE!r}", Status.FAIL,
                                                      Symptom.NO_TRIGGER_PERMISSION)  # fmt: skip
    assert "403" in step.detail and "Op" in step.fix and "'viewer'" in step.fix
    assert statuses(report)["authentication"] is Status.OK  # Viewer may read: the problem is the role, not the login
    assert report.exit_code == 1
    assert run_counts(airflow, EXAMPLE) == before


def test_paused_dag_is_a_loud_warning_with_the_unpause_fix(airflow: AirflowServer) -> None:
    report = run_check(function_env(airflow, "op", DAG_ID=PAUSED))
    paused = next(s for s in report.steps if s.symptom is Symptom.DAG_PAUSED)
    assert paused.status is Status.WARN and "PAUSED" in paused.detail
    assert f"airflow dags unpause {PAUSED}" in paused.fix
    assert report.exit_code == 0  # warnings do not fail the check
    assert "⚠" in report.render() and "fix: a paused DAG" in report.render()


def test_missing_dag_is_a_failure_with_its_fix(airflow: AirflowServer) -> None:
    report = run_check(function_env(airflow, "op", DAG_ID="dagtrigger_missing"))
    step = report.steps[-1]
    assert (step.name, step.status, step.symptom) == ("DAG 'dagtrigger_missing' exists", Status.FAIL,
                                                      Symptom.DAG_NOT_FOUND)  # fmt: skip
    assert "not parsed" in step.fix and "dagtrigger_missing" in step.fix
    assert report.exit_code == 1


def test_wrong_password_fails_at_authentication(airflow: AirflowServer) -> None:
    env = {**function_env(airflow, "op"), "AIRFLOW_PASSWORD": "not-the-password"}
    report = run_check(env)
    step = report.steps[-1]
    assert (step.name, step.status, step.symptom) == ("authentication", Status.FAIL, Symptom.CREDENTIALS_REJECTED)
    assert "AIRFLOW_PASSWORD" in step.fix
    assert "not-the-password" not in report.render()


def test_routes_file_checks_every_dag_it_can_trigger(airflow: AirflowServer, tmp_path: Path) -> None:
    routes = {
        "routes": [
            {"name": "load", "dag_id": EXAMPLE, "match": {"kind": "storage"}},
            {"name": "hooks", "allow_dags": [OTHER, PAUSED, EXAMPLE], "match": {"kind": "webhook"}},
        ]
    }
    routes_file = tmp_path / "routes.json"
    routes_file.write_text(json.dumps(routes))
    env = {k: v for k, v in function_env(airflow, "op", ROUTES_FILE=str(routes_file)).items() if k != "DAG_ID"}
    before = run_counts(airflow, EXAMPLE, OTHER, PAUSED)
    report = run_check(env)
    names = statuses(report)
    for dag_id in (EXAMPLE, OTHER, PAUSED):
        assert names[f"may trigger {dag_id!r}"] is Status.OK
    assert names[f"DAG {PAUSED!r} is unpaused"] is Status.WARN and report.exit_code == 0
    assert run_counts(airflow, EXAMPLE, OTHER, PAUSED) == before


def test_the_command_line_json_and_exit_codes(airflow: AirflowServer) -> None:
    """``python -m dagtrigger check --json`` as a user runs it, with the function's environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAG_ID", "ROUTES_FILE"))}

    def check(user: str) -> tuple[int, dict[str, object]]:
        result = subprocess.run(
            [sys.executable, "-m", "dagtrigger", "check", "--json"],
            cwd=ROOT, env={**clean, **function_env(airflow, user)}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
        return result.returncode, json.loads(result.stdout)

    code, out = check("op")
    assert code == 0 and out["ok"] is True and out["airflow_uri"] == airflow.url
    code, out = check("viewer")
    steps = out["steps"]
    assert code == 1 and out["ok"] is False and isinstance(steps, list)
    assert steps[-1]["symptom"] == "no-trigger-permission" and steps[-1]["status"] == "fail"
