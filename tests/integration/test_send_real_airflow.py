"""``python -m dagtrigger send`` into a real functions-framework process in front of real Airflow 2.11 and 3.3.

Storage and Pub/Sub events go to ``trigger_event``, a signed webhook to ``trigger_http``; the runs are read back
from Airflow's API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dagtrigger import cli
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.support.function_env import function_env

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DAG = "dagtrigger_example"
SECRET = "send-test-webhook-secret-0123456789"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("send")


@pytest.fixture(scope="module")
def event_function(airflow: AirflowServer, workdir: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_event", function_env(airflow), workdir) as process:
        yield process


@pytest.fixture(scope="module")
def http_function(airflow: AirflowServer, workdir: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_http", function_env(airflow, WEBHOOK_HMAC_SECRET=SECRET), workdir) as process:
        yield process


def runs_where(airflow: AirflowServer, test: Any) -> list[dict[str, Any]]:
    return [r for r in airflow.list_runs(DAG) if test(r["conf"])]


def test_storage_event_creates_one_run_and_a_resend_of_the_same_version_none(
    airflow: AirflowServer, event_function: FunctionProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"incoming/été {airflow.major}/orders 1.csv"  # non-ASCII and spaces: percent-encoded ce-subject
    argv = ["send", "storage", "--url", event_function.url, "--bucket", "landing", "--name", name,
            "--generation", "1764000000000042"]  # fmt: skip
    assert cli.main(argv) == 0
    first = capsys.readouterr().out
    (run,) = runs_where(airflow, lambda conf: conf.get("name") == name)
    assert run["conf"]["bucket"] == "landing" and run["conf"]["generation"] == "1764000000000042"
    assert run["conf"]["contentType"] == "text/csv" and run["state"] == "queued"
    # send prints the function's answer: the outcome and the run id, not only "HTTP 200 OK"
    assert "HTTP 200" in first and '"outcome": "done"' in first and run["dag_run_id"] in first, first
    assert cli.main(argv) == 0  # same object version again: Airflow 409, acknowledged as a duplicate
    again = capsys.readouterr().out
    assert '"outcome": "duplicate"' in again and run["dag_run_id"] in again, again
    assert len(runs_where(airflow, lambda conf: conf.get("name") == name)) == 1
    outcomes = [e["outcome"] for e in event_function.logs() if e.get("run_id") == run["dag_run_id"]]
    assert outcomes[-2:] == ["done", "duplicate"]


def test_pubsub_event_creates_a_run_with_the_message_as_conf(
    airflow: AirflowServer, event_function: FunctionProcess
) -> None:
    table = f"orders_send_{airflow.major}"
    argv = ["send", "pubsub", "--url", event_function.url, "--data", json.dumps({"table": table}),
            "--attribute", "origin=send", "--topic", "projects/example-project/topics/landing-files"]  # fmt: skip
    assert cli.main(argv) == 0
    (run,) = runs_where(airflow, lambda conf: conf.get("table") == table)
    event = run["conf"]["_event"]
    assert event["attributes"] == {"origin": "send"} and event["topic"] == "landing-files"
    assert run["dag_run_id"].startswith("pubsub__example-project__")


def test_signed_webhook_from_the_command_line_creates_a_run(
    airflow: AirflowServer, http_function: FunctionProcess
) -> None:
    body = {"table": f"hook_{airflow.major}", "rows": 3}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    def send(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "dagtrigger", "send", "webhook", "--url", http_function.url, "--json",
             json.dumps(body), "--path", f"/dags/{DAG}", "--idempotency-key", f"send-{airflow.major}", *extra],
            cwd=ROOT, env={**clean, "WEBHOOK_HMAC_SECRET": SECRET}, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip

    unsigned = send()
    assert unsigned.returncode == 1 and "HTTP 401" in unsigned.stdout
    result = send("--secret-env", "WEBHOOK_HMAC_SECRET")
    assert result.returncode == 0, result.stdout + result.stderr
    assert SECRET not in result.stdout + result.stderr
    answer = json.loads(result.stdout.split("\n", 1)[1])
    assert answer["outcome"] == "done"
    (created,) = answer["runs"]
    run = airflow.get_run(DAG, created["run_id"])
    assert run is not None and run["conf"]["table"] == body["table"] and run["conf"]["rows"] == 3
    assert run["conf"]["_event"]["idempotency_key"] == f"send-{airflow.major}"
