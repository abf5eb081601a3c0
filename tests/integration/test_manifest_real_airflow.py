"""Manifests: a route reads a small JSON object from Cloud Storage (a local emulator) into the conf."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.support.function_env import function_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import storage_attrs, storage_data

pytestmark = pytest.mark.integration
DAG = "dagtrigger_example"
ROUTES = """
routes:
  - name: batch-with-manifest
    dag_id: dagtrigger_example
    match: {bucket: landing}
    marker: _SUCCESS
    manifest: {object: "concat(folder, '/manifest.json')", into: manifest, max_bytes: 2048}
    conf: {files: manifest.files, count: length(manifest.files)}
"""


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket("landing")
        yield emulator


@pytest.fixture(scope="module")
def function(
    airflow: AirflowServer, gcs: StorageEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionProcess]:
    folder = tmp_path_factory.mktemp("manifest")
    (folder / "routes.yaml").write_text(ROUTES)
    env = {**function_env(airflow, ROUTES_FILE=str(folder / "routes.yaml")), **gcs.env()}
    del env["DAG_ID"]
    with FunctionProcess("trigger_event", env, folder) as process:
        yield process


def put(gcs: StorageEmulator, name: str, body: bytes) -> None:
    gcs.client().bucket("landing").blob(name).upload_from_string(body, content_type="application/json")


def marker(folder: str) -> tuple[dict[str, str], dict[str, str]]:
    name = f"{folder}/_SUCCESS"
    return storage_attrs(name=name, datacontenttype="application/json"), storage_data(name=name)


def test_manifest_is_read_into_the_conf(
    airflow: AirflowServer, gcs: StorageEmulator, function: FunctionProcess
) -> None:
    folder = f"batches/ok-{airflow.major}"
    put(gcs, f"{folder}/manifest.json", json.dumps({"files": ["a.parquet", "b.parquet"], "rows": 10}).encode())
    function.mark()
    assert function.send_event(*marker(folder)).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome"))
    run = airflow.get_run(DAG, entry["run_id"])
    assert run is not None
    assert run["conf"]["manifest"] == {"files": ["a.parquet", "b.parquet"], "rows": 10}
    assert run["conf"]["files"] == ["a.parquet", "b.parquet"] and run["conf"]["count"] == 2
    assert run["conf"]["folder"] == folder


@pytest.mark.parametrize(
    ("case", "body", "fragment"),
    [
        ("missing", None, "does not exist"),
        ("invalid", b"{not json", "not valid JSON"),
        ("array", b"[1, 2]", "must be a JSON object"),
        ("large", json.dumps({"x": "y" * 4096}).encode(), "over max_bytes=2048"),
    ],
)
def test_bad_manifest_is_a_clear_permanent_failure(
    airflow: AirflowServer,
    gcs: StorageEmulator,
    function: FunctionProcess,
    case: str,
    body: bytes | None,
    fragment: str,
) -> None:
    folder = f"batches/{case}-{airflow.major}"
    if body is not None:
        put(gcs, f"{folder}/manifest.json", body)
    function.mark()
    assert function.send_event(*marker(folder)).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome"))
    assert entry["outcome"] == "failed" and entry["severity"] == "ERROR"
    assert fragment in entry["message"] and f"gs://landing/{folder}/manifest.json" in entry["message"]
    assert airflow.get_run(DAG, entry["run_id"]) is None
