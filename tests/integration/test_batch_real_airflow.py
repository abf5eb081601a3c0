"""Batch windows against real Airflow 2.11 and 3.3 on PostgreSQL with their schedulers running.

A real functions-framework process receives real CloudEvents and records members in the storage emulator; the
example DAG ``dagtrigger_batch`` lists its members prefix when it runs. What is checked is what Airflow itself says
(run state, start date, the task's XCom): a run created early in its window stays queued until the window closes
(Airflow 3: run_after; Airflow 2: a future logical date with allow_trigger_in_future=False), then runs and reads
exactly the events sent; redeliveries add no member and no run; a late member lands in the next batch flagged late.
Members are sealed (DEAD_LETTER_SEAL_SECRET) and the DAG holds the key (Airflow Variable dagtrigger_member_seal_secret):
it reads every member the function wrote and none that a writer of the members bucket planted.
"""

from __future__ import annotations

import ast
import base64
import json
import subprocess
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.localairflow import AirflowServer, ensure_airflow_venv
from devtools.localfunction import FunctionProcess
from tests.support.function_env import function_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import storage_attrs, storage_data

pytestmark = pytest.mark.integration

DAG = "dagtrigger_batch"
CONTROL_DAG = "dagtrigger_example"  # one quick task
WINDOW_S = 20
BUCKET = "ops-batches"
RUN_DEADLINE_S = 120.0
SEAL_KEY = base64.b64encode(b"batch-member-seal-key-0123456789").decode()
ROUTES = f"""
routes:
  - name: exports
    dag_id: {DAG}
    match: {{kind: storage, bucket: landing, name: {{prefix: exports/}}}}
    conf: {{folder: folder}}
    batch: {{window: {WINDOW_S}, members: gs://{BUCKET}/members}}
"""


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket(BUCKET)
        yield emulator


@pytest.fixture(scope="module", params=[2, 3], ids=["airflow2", "airflow3"])
def airflow_pg(
    request: pytest.FixtureRequest, gcs: StorageEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowServer]:
    major = int(request.param)
    workdir = tmp_path_factory.mktemp(f"batch-airflow{major}")
    extra_env = {**gcs.env(), "AIRFLOW_VAR_DAGTRIGGER_MEMBER_SEAL_SECRET": SEAL_KEY}  # the DAG checks members' seals
    with AirflowServer(
        major, workdir, database="postgres", scheduler=True, auth="password", extra_env=extra_env
    ) as server:
        yield server


@pytest.fixture(scope="module")
def function(airflow_pg: AirflowServer, gcs: StorageEmulator, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("batch-function")
    (folder / "routes.yaml").write_text(ROUTES)
    env = {
        **function_env(airflow_pg, ROUTES_FILE=str(folder / "routes.yaml"), AIRFLOW_MAX_IN_FLIGHT="8"),
        **gcs.env(),
        "DEAD_LETTER_SEAL_SECRET": SEAL_KEY,
    }
    del env["DAG_ID"]
    with FunctionProcess("trigger_event", env, folder) as process:
        yield process


def at_window_start(margin_s: float = 0.5) -> datetime:
    """Sleep until just after the next window boundary (bounded by one window) and return that boundary."""
    now = datetime.now(UTC)
    start = datetime.fromtimestamp((int(now.timestamp()) // WINDOW_S + 1) * WINDOW_S, UTC)
    time.sleep((start - now).total_seconds() + margin_s)
    return start


def upload(function: FunctionProcess, name: str, at: datetime, event_id: str | None = None) -> dict[str, Any]:
    attrs = storage_attrs(name=name, time=at.isoformat().replace("+00:00", "Z"), datacontenttype="application/json")
    if event_id:
        attrs["id"] = event_id
    function.mark()
    answer = function.send_event(attrs, storage_data(name=name, generation=str(zlib.crc32(name.encode()))))
    assert answer.status_code == 200, answer.text
    return next(e for e in function.logs() if e.get("outcome"))


def batch_runs(airflow: AirflowServer) -> dict[str, dict[str, Any]]:
    return {r["dag_run_id"]: r for r in airflow.list_runs(DAG)}


def wait_finished(airflow: AirflowServer, run_id: str, dag_id: str = DAG) -> dict[str, Any]:
    run = airflow.wait_run(dag_id, run_id, RUN_DEADLINE_S)
    assert run is not None and run["state"] in ("success", "failed"), f"run {run_id} not finished: {run}"
    return run


def task_result(airflow: AirflowServer, run_id: str) -> dict[str, Any]:
    """The example DAG's return value (Airflow 3 answers JSON; Airflow 2 the Python repr of the value)."""
    path = f"{airflow.api_prefix}/dags/{DAG}/dagRuns/{run_id}/taskInstances/read_members/xcomEntries/return_value"
    answer = airflow.request("GET", path)
    assert answer.status == 200, answer.body
    value = answer.body["value"]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = ast.literal_eval(value)
    assert isinstance(value, dict)
    return value


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_window_becomes_one_run_per_folder_started_after_the_window_closed(
    airflow_pg: AirflowServer, function: FunctionProcess, gcs: StorageEmulator
) -> None:
    start = at_window_start()
    end = start + timedelta(seconds=WINDOW_S)
    sent = {"a": [f"exports/a{airflow_pg.major}/part-{n}.csv" for n in range(5)],
            "b": [f"exports/b{airflow_pg.major}/part-{n}.csv" for n in range(3)]}  # fmt: skip
    names = [name for group in sent.values() for name in group]
    logged = [upload(function, name, datetime.now(UTC)) for name in names]
    for n, name in enumerate(names[:2]):  # redeliveries: new event ids, same object versions, same window
        again = upload(function, name, start + timedelta(seconds=1), event_id=f"redelivery-{n}")
        assert again["run_id"] == logged[n]["run_id"]
    run_ids = {entry["run_id"] for entry in logged}
    assert len(run_ids) == 2, logged
    runs = batch_runs(airflow_pg)
    assert set(runs) == run_ids
    assert all(run["state"] == "queued" for run in runs.values())
    members = gcs.objects(BUCKET, "members/")
    # Member names carry the object name squashed ('exports/a3/…' → 'exports_a3_…'); match that, not a bare 'a3',
    # which a hex digest in another major's member name can contain.
    ours = (f"exports_a{airflow_pg.major}_", f"exports_b{airflow_pg.major}_")
    assert len([m for m in members if any(prefix in m for prefix in ours)]) == 8

    # Still queued shortly before the window closes, with the scheduler running the whole time.
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds() - 2))
    assert datetime.now(UTC) < end
    assert all(airflow_pg.get_run(DAG, run_id)["state"] == "queued" for run_id in run_ids)  # type: ignore[index]

    for run_id in run_ids:
        run = wait_finished(airflow_pg, run_id)
        assert run["state"] == "success", run
        assert parse(run["start_date"]) >= end, (run["start_date"], end)
        result = task_result(airflow_pg, run_id)
        folder = result["group"].rpartition("/")[2][0]
        assert result["names"] == sorted(sent[folder]) and result["late"] == []
        assert result["verified"] is True and result["refused"] == []  # every sealed member verified
        assert len(result["keys"]) == len(sent[folder])
        assert run["conf"]["folder"] == result["group"]
        assert parse(run["conf"]["batch"]["window_end"]) == end
    assert set(batch_runs(airflow_pg)) == run_ids  # the redeliveries made no run


def test_a_late_member_lands_in_the_next_batch_flagged_late(
    airflow_pg: AirflowServer, function: FunctionProcess, gcs: StorageEmulator
) -> None:
    start = at_window_start()
    first = upload(function, f"exports/late{airflow_pg.major}/on-time.csv", datetime.now(UTC))
    run = wait_finished(airflow_pg, first["run_id"])
    assert run["state"] == "success"
    # A delivery delayed past its window's run: its event time is inside the window that already ran.
    late = upload(function, f"exports/late{airflow_pg.major}/delayed.csv", start + timedelta(seconds=3))
    assert late["run_id"] != first["run_id"]
    assert task_result(airflow_pg, first["run_id"])["names"] == [f"exports/late{airflow_pg.major}/on-time.csv"]
    rerun = wait_finished(airflow_pg, late["run_id"])
    assert rerun["state"] == "success"
    result = task_result(airflow_pg, late["run_id"])
    assert result["names"] == [f"exports/late{airflow_pg.major}/delayed.csv"] and len(result["late"]) == 1
    assert parse(rerun["start_date"]) >= parse(result["window_end"])


def test_members_planted_in_a_batch_are_not_read_by_the_dag(
    airflow_pg: AirflowServer, function: FunctionProcess, gcs: StorageEmulator
) -> None:
    """Batching x a writable members bucket: what a bucket writer adds to a run's members prefix before the window
    closes (a new member, an altered copy, a genuine member copied under another name, not JSON, a NaN that no JSON
    encoder writes) is not read, and does not fail the run."""
    at_window_start()
    group = f"exports/planted{airflow_pg.major}"
    logged = [upload(function, f"{group}/part-{n}.csv", datetime.now(UTC)) for n in range(2)]
    (run_id,) = {entry["run_id"] for entry in logged}
    members_uri = airflow_pg.get_run(DAG, run_id)["conf"]["batch"]["members"]  # type: ignore[index]
    bucket = gcs.client().bucket(BUCKET)
    prefix = members_uri.removeprefix(f"gs://{BUCKET}/")
    genuine = {b.name: json.loads(b.download_as_bytes()) for b in bucket.list_blobs(prefix=prefix)}
    assert len(genuine) == 2 and all(doc.get("seal") for doc in genuine.values()), genuine
    real = next(iter(genuine.values()))
    unsealed = {k: v for k, v in real.items() if k != "seal"}
    planted = {
        f"{prefix}planted-new.json": {**unsealed, "key": "planted-new", "conf": {"name": f"{group}/évil.csv"}},
        f"{prefix}planted-altered.json": {**real, "key": "planted-altered"},
        f"{prefix}planted-moved.json": real,  # sealed, but to another object
    }
    for name, doc in planted.items():
        bucket.blob(name).upload_from_string(json.dumps(doc), content_type="application/json")
    bucket.blob(f"{prefix}planted-garbage.json").upload_from_string(b"\xff not json")
    nan = {"key": "planted-nan", "late": False, "conf": {"n": float("nan")}, "seal": real["seal"]}
    bucket.blob(f"{prefix}planted-nan.json").upload_from_string(json.dumps(nan))  # NaN: json.loads takes it

    run = wait_finished(airflow_pg, run_id)
    assert run["state"] == "success", run
    result = task_result(airflow_pg, run_id)
    assert result["verified"] is True
    assert result["keys"] == sorted(doc["key"] for doc in genuine.values())
    assert result["names"] == [f"{group}/part-0.csv", f"{group}/part-1.csv"]
    assert result["refused"] == sorted([*planted, f"{prefix}planted-garbage.json", f"{prefix}planted-nan.json"])


@pytest.mark.parametrize("major", [2, 3])
def test_airflow_masks_the_seal_key_variable(major: int) -> None:
    """Airflow hides a Variable's value in its UI and task logs only when the name holds a sensitive word: the name
    the example DAG reads must be one, as Airflow itself decides (a name ending in _key is not)."""
    dag = Path(__file__).resolve().parents[2] / "devtools" / "dags" / "dagtrigger_batch_example.py"
    (name,) = [
        node.value.value
        for node in ast.parse(dag.read_text()).body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") == "SEAL_KEY_VARIABLE"
        and isinstance(node.value, ast.Constant)
    ]
    code = (
        "try:\n    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key as hide\n"
        "except ImportError:\n    from airflow.utils.log.secrets_masker import should_hide_value_for_key as hide\n"
        "import sys\nprint(hide(sys.argv[1]), hide('dagtrigger_member_seal_key'))"
    )
    python = ensure_airflow_venv(major) / "bin" / "python"
    result = subprocess.run([str(python), "-c", code, name], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "False"], (name, result.stdout)


def test_the_start_time_claims_hold_on_the_real_scheduler(airflow_pg: AirflowServer) -> None:
    """The mechanism itself, without the function: a run dated in the future (Airflow 3: run_after; Airflow 2: a
    logical date, allow_trigger_in_future at its default False) stays queued while an undated one starts at once."""
    now = datetime.now(UTC)
    later = now + timedelta(seconds=15)
    stamp = int(now.timestamp())
    dated, undated = f"claim_dated_{stamp}", f"claim_undated_{stamp}"
    if airflow_pg.major >= 3:
        bodies = {dated: {"logical_date": None, "run_after": later.isoformat()}, undated: {"logical_date": None}}
    else:
        bodies = {dated: {"logical_date": later.isoformat()}, undated: {}}
    for run_id, body in bodies.items():
        answer = airflow_pg.request("POST", f"{airflow_pg.api_prefix}/dags/{CONTROL_DAG}/dagRuns",
                                    {"dag_run_id": run_id, "conf": {}, **body})  # fmt: skip
        assert answer.status == 200, answer.body
    deadline = time.monotonic() + RUN_DEADLINE_S
    while airflow_pg.get_run(CONTROL_DAG, undated)["state"] == "queued":  # type: ignore[index]
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert datetime.now(UTC) < later - timedelta(seconds=1), "the undated run took too long to start to compare"
    assert airflow_pg.get_run(CONTROL_DAG, dated)["state"] == "queued"  # type: ignore[index]
    run = wait_finished(airflow_pg, dated, CONTROL_DAG)
    assert parse(run["start_date"]) >= later
