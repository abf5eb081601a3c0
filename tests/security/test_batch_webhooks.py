"""Issue 16, findings 1 and 2: batch × webhooks. Nothing unsigned may choose a batch group or window.

1. Standard Webhooks do not sign the URL, yet a webhook's default batch group was its path: one captured request
   sent to ``/sbatch``, ``/sbatch/a``, ``/sbatchZZZ`` made one run per path. Such a route now needs a group of its
   own, and the path is not in what its group sees.
2. A batched webhook's window came from its arrival time: the same signed bytes sent again after the window closed
   made another run. The window now comes from the signed timestamp, so a replay lands in the same batch.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration
STD = "whsec_" + base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket("members")
        yield emulator


def _serve(airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path, route: dict[str, object]) -> FunctionProcess:
    tmp_path.mkdir(exist_ok=True)
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [route]}))
    return FunctionProcess("trigger_http", webhook_env(airflow.url, routes, STD_SECRET=STD, **gcs.env()), tmp_path)


def test_an_unsigned_path_does_not_choose_a_batch(airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path) -> None:
    route = {
        "name": "sbatch",
        "dag_id": "sbatch_dag",
        "match": {"kind": "webhook", "path": {"prefix": "/sbatch"}},
        "webhook": {"scheme": "standard-webhooks", "secrets": "STD_SECRET"},
        "batch": {"window": 3600, "members": "gs://members/s"},
    }
    fn = _serve(airflow, gcs, tmp_path, route)
    try:
        fn.start()
    except RuntimeError as exc:
        assert "batch.group" in str(exc)
    else:
        try:
            captured = webhook_request(fn.url, {"n": 1}, "/sbatch", STD, "msg-1", scheme="standard-webhooks")
            for path in ("/sbatch", "/sbatch/a", "/sbatch/b", "/sbatchZZZ"):
                fn.session.post(fn.url + path, headers=dict(captured.headers), data=captured.body, timeout=30)
        finally:
            fn.stop()
        assert len(airflow.runs) <= 1, sorted(airflow.runs)
        pytest.fail("a Standard Webhooks batched route grouping on the unsigned path must not start")
    with _serve(airflow, gcs, tmp_path / "grouped", {**route, "batch": {**route["batch"], "group": "path"}}) as fn:  # type: ignore[dict-item]
        captured = webhook_request(fn.url, {"n": 1}, "/sbatch", STD, "msg-2", scheme="standard-webhooks")
        for path in ("/sbatch", "/sbatch/a", "/sbatchZZZ"):
            fn.session.post(fn.url + path, headers=dict(captured.headers), data=captured.body, timeout=30)
    assert airflow.runs == {}, sorted(airflow.runs)  # `path` is not in a Standard Webhooks group's document


def test_a_replayed_signed_request_stays_in_its_window(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    route = {
        "name": "vbatch",
        "dag_id": "v_dag",
        "match": {"kind": "webhook", "path": {"prefix": "/vbatch"}},
        "batch": {"window": 1, "members": "gs://members/v"},
    }
    with _serve(airflow, gcs, tmp_path, route) as fn:
        captured = webhook_request(fn.url, {"n": 1}, "/vbatch", SECRET, "v-1")
        for attempt in range(3):
            if attempt:
                time.sleep(1.1)  # past the end of the 1 s window the first copy landed in
            reply = fn.session.post(captured.url, headers=dict(captured.headers), data=captured.body, timeout=30)
            assert reply.status_code == 200, reply.text
    assert len([dag for dag, _ in airflow.runs if dag == "v_dag"]) == 1, sorted(airflow.runs)
