"""gunicorn (since 24) starts a control socket in its master right after forking the worker: an asyncio server on
a Unix socket (``$XDG_RUNTIME_DIR/gunicorn.ctl``) for the ``gunicornc`` tool. Nothing on Cloud Run uses it, and its
start-up (importing asyncio, ~40 ms of CPU) runs while the first event of a cold start is served: on an instance
with one vCPU or less it delays that event. ``dagtrigger/http_limits.py`` turns it off; a plain functions-framework
function (the bench's bare baseline) still opens it, which shows this gunicorn has it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dagtrigger.send import storage_event
from devtools.fakes import Answer, FakeServer
from devtools.localfunction import REPO, FunctionProcess

pytestmark = pytest.mark.integration


def _socket_after_first_event(tmp_path: Path, target: str, source: Path | None, env: dict[str, str]) -> bool:
    runtime = tmp_path / f"run-{target}"
    runtime.mkdir()
    with FunctionProcess(target, {**env, "XDG_RUNTIME_DIR": str(runtime)}, tmp_path, source=source) as function:
        event = storage_event(function.url, "ctl", "incoming/ctl.csv")
        answer = function.post(headers=dict(event.headers), data=event.body, timeout=20)
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + 3  # the master opens it right after the fork; give it time to appear
        while not (runtime / "gunicorn.ctl").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return (runtime / "gunicorn.ctl").exists()


def test_no_gunicorn_control_socket(tmp_path: Path) -> None:
    with FakeServer(lambda seen: Answer(200, {"version": "3.3.2", "dag_run_id": "r", "state": "queued"})) as airflow:
        env = {"AIRFLOW_URI": airflow.url, "DAG_ID": "d", "AIRFLOW_AUTH": "bearer", "AIRFLOW_TOKEN": "t"}
        if not _socket_after_first_event(tmp_path, "bare_event", REPO / "bench" / "baselines.py", env):
            pytest.skip("this gunicorn opens no control socket")
        assert not _socket_after_first_event(tmp_path, "trigger_event", None, env)
