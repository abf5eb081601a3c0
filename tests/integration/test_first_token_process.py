"""The first Google token in a real functions-framework process: gunicorn's master fetches it (google-auth against
a local metadata server) after it forks the worker, and the worker's first event uses it without importing google-auth
itself. Proved from outside: which process has cryptography's extension mapped (/proc/<pid>/maps), what the metadata
server and Airflow saw."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from dagtrigger.send import storage_event
from devtools.fakes import Answer, FakeMetadataServer, FakeServer, Seen
from devtools.localfunction import FunctionProcess

pytestmark = pytest.mark.integration


def _airflow(seen: Seen) -> Answer:
    if not seen.headers.get("Authorization"):
        return Answer(401, {"detail": "Not authenticated"})
    if seen.path == "/api/v2/version":
        return Answer(200, {"version": "3.3.2"})
    return Answer(200, {"dag_run_id": "r", "state": "queued"})


def _maps_cryptography(pid: int) -> bool:
    """google-auth's token modules import cryptography, whose Rust extension shows in the process's memory map."""
    return "cryptography" in Path(f"/proc/{pid}/maps").read_text()


def _claims(authorization: str) -> dict[str, object]:
    payload = authorization.removeprefix("Bearer ").split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@pytest.mark.parametrize(("mode", "handover"), [("google", "on"), ("google", "off"), ("id-token", "on")])
def test_the_master_fetches_the_first_token_for_the_worker(tmp_path: Path, mode: str, handover: str) -> None:
    audience = "https://airflow.example.test/ü"  # an ID token's audience travels with the hand-over
    with FakeServer(_airflow) as airflow, FakeMetadataServer() as metadata:
        env = {
            "AIRFLOW_URI": airflow.url,
            "DAG_ID": "dagtrigger_example",
            "AIRFLOW_AUTH": mode,
            **({"AIRFLOW_AUDIENCE": audience} if mode == "id-token" else {}),
            "K_SERVICE": "dagtrigger",
            **metadata.env(),
            **({"DAGTRIGGER_FIRST_TOKEN": "0"} if handover == "off" else {}),
        }
        with FunctionProcess("trigger_event", env, tmp_path) as function:
            deadline = time.monotonic() + 15
            while not any(s.headers.get("Authorization") for s in airflow.seen) and time.monotonic() < deadline:
                time.sleep(0.05)
            event = storage_event(function.url, "warm", "incoming/first-token.csv")
            answer = function.post(headers=dict(event.headers), data=event.body, timeout=20)
            master, workers = function.pids()
            in_master, in_worker = _maps_cryptography(master), [_maps_cryptography(w) for w in workers]
            logs = function.output()
        assert answer.status_code == 200, function.tail()
    posts = [s for s in airflow.seen if s.method == "POST"]
    sent = [s.headers.get("Authorization", "") for s in posts]
    # One token for the instance, whichever process fetched it.
    if mode == "google":
        assert (metadata.token_fetches, metadata.id_token_fetches) == (1, 0)
        assert sent == [f"Bearer {metadata.token(1)}"]
        secret = metadata.token(1)
    else:
        assert (metadata.token_fetches, metadata.id_token_fetches) == (0, 1)
        assert len(sent) == 1 and _claims(sent[0])["aud"] == audience, sent
        secret = sent[0].removeprefix("Bearer ")
    # A request without a credential only ever asks for the version (the warm-up opening the connection).
    assert {s.path for s in airflow.seen if not s.headers.get("Authorization")} <= {"/api/v2/version"}
    assert secret not in logs
    if handover == "on":
        assert in_master and in_worker == [False], (in_master, in_worker)  # google-auth ran in the master only
    else:
        assert not in_master and in_worker == [True], (in_master, in_worker)  # as before: in the worker
