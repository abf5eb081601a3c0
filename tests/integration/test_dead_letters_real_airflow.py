"""Dead letters and replay, end to end: the function process writes records to a local Cloud Storage emulator,
``python -m dagtrigger replay`` re-sends them to real Airflow, and a replayed run is never doubled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.localairflow import AirflowServer
from devtools.localfunction import REPO, FunctionProcess
from tests.support.fakes import free_port
from tests.support.function_env import function_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import storage_attrs

pytestmark = pytest.mark.integration
BUCKET = "dead-letters"
DAG = "dagtrigger_example"
LANDING = "landing"


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket(BUCKET)
        emulator.create_bucket(LANDING)
        yield emulator


def old_upload(gcs: StorageEmulator, name: str, age_s: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """An upload's event ``age_s`` old; the object exists in the emulator and the event carries its resource as
    Cloud Storage reports it, since replay checks a storage record against the object (deadletter/proof.py)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - age_s))
    blob = gcs.client().bucket(LANDING).blob(name)
    blob.upload_from_string(b"a,b\n1,2\n", content_type="text/csv")
    blob.reload()
    attrs = storage_attrs(bucket=LANDING, name=name, time=when, datacontenttype="application/json")
    return attrs, dict(blob._properties)


def records(gcs: StorageEmulator, prefix: str) -> list[dict[str, Any]]:
    client = gcs.client()
    return [json.loads(b.download_as_bytes()) for b in client.list_blobs(BUCKET, prefix=prefix)]


def replay(
    airflow: AirflowServer, gcs: StorageEmulator, uri: str, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **function_env(airflow, **settings), **gcs.env()}
    return subprocess.run(
        [sys.executable, "-m", "dagtrigger", "replay", uri, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_expired_event_is_dead_lettered_then_replayed_exactly_once(
    airflow: AirflowServer, gcs: StorageEmulator, tmp_path: Path
) -> None:
    prefix = f"expired-{airflow.major}"
    uri = f"gs://{BUCKET}/{prefix}"
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: Airflow is "down" for the function
    env = {
        **function_env(airflow, AIRFLOW_URI=down, AIRFLOW_RETRY_BUDGET_SECONDS="1"),
        "DEAD_LETTER_URI": uri,
        "MAX_EVENT_AGE_SECONDS": "3600",
        **gcs.env(),
    }
    name = f"late/report-{airflow.major}.csv"
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        fresh = function.send_event(*old_upload(gcs, f"fresh-{airflow.major}.csv", age_s=60))
        assert fresh.status_code == 503  # young enough: redelivered, not dead-lettered
        response = function.send_event(*old_upload(gcs, name, age_s=7200))
        assert response.status_code == 200, response.text
        entry = next(e for e in function.logs() if e.get("outcome") == "failed")
    assert "MAX_EVENT_AGE_SECONDS=3600" in entry["message"] and entry["dead_letter"].startswith(prefix)
    (record,) = records(gcs, prefix)
    assert record["dag_id"] == DAG and record["reason"].startswith("gave up: the event is")
    assert record["raw"]["data"]["name"] == name

    dry = replay(airflow, gcs, uri, "--dry-run")
    assert dry.returncode == 0 and "would replay" in dry.stdout
    assert airflow.get_run(DAG, record["run_id"]) is None

    first = replay(airflow, gcs, uri)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("done")
    run = airflow.get_run(DAG, record["run_id"])
    assert run is not None and run["conf"]["name"] == name

    again = replay(airflow, gcs, uri, "--include-replayed")
    assert again.returncode == 0 and again.stdout.startswith("duplicate")
    assert [r["dag_run_id"] for r in airflow.list_runs(DAG)].count(record["run_id"]) == 1
    (marked,) = records(gcs, prefix)
    assert [r["outcome"] for r in marked["replays"]] == ["done", "duplicate"]
    assert "no dead letters matched" in replay(airflow, gcs, uri).stderr  # replayed records are skipped


def test_missing_dag_is_dead_lettered_and_a_failed_replay_stays_pending(
    airflow: AirflowServer, gcs: StorageEmulator, tmp_path: Path
) -> None:
    prefix = f"missing-{airflow.major}"
    uri = f"gs://{BUCKET}/{prefix}"
    env = {**function_env(airflow, DAG_ID="no_such_dag"), "DEAD_LETTER_URI": uri, **gcs.env()}
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        ce, data = old_upload(gcs, f"orphan-{airflow.major}.csv", age_s=5)
        assert function.send_event(ce, data).status_code == 200
        assert function.send_event({**ce, "id": "redelivered"}, data).status_code == 200
    (record,) = records(gcs, prefix)
    assert record["status"] == 404 and record["attempts"] == 2
    result = replay(airflow, gcs, uri, DAG_ID="no_such_dag")  # replay sends what the route sends today
    assert result.returncode == 1 and result.stdout.startswith("failed")
    (marked,) = records(gcs, prefix)
    assert marked["replays"][-1]["outcome"] == "failed"
    assert "would replay" in replay(airflow, gcs, uri, "--dry-run").stdout  # still pending
    corrected = replay(airflow, gcs, uri)  # DAG_ID corrected: the same event goes to the right DAG (issue 19 item 6)
    assert corrected.returncode == 0 and corrected.stdout.startswith("done"), corrected.stdout + corrected.stderr
    assert airflow.get_run(DAG, record["run_id"]) is not None


def test_failed_dead_letter_write_is_not_acknowledged(
    airflow: AirflowServer, gcs: StorageEmulator, tmp_path: Path
) -> None:
    env = {**function_env(airflow, DAG_ID="no_such_dag"), "DEAD_LETTER_URI": "gs://no-such-bucket/x", **gcs.env()}
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        response = function.send_event(*old_upload(gcs, f"unrecorded-{airflow.major}.csv", age_s=5))
        assert response.status_code == 503
        assert "dead letter could not be written" in response.json()["reason"]
