"""dagtrigger.first_token: the master's token handed to the forked worker. Each case runs in a fresh interpreter
(fork hooks are process-wide and permanent), which forks like gunicorn's master does and prints what the child got."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os, sys, time
from dagtrigger import first_token
from dagtrigger.first_token import FirstToken

class Source:
    mode = "google"
    def __init__(self, behaviour):
        self.behaviour = behaviour
    def handover(self):
        if self.behaviour == "raise":
            raise RuntimeError("boom")
        if self.behaviour == "hang":
            time.sleep(3)
        if self.behaviour == "error":
            return FirstToken("google", "aud", error="metadata server said no")
        audience = "other" if self.behaviour == "other-audience" else "aud"
        return FirstToken("google", audience, "tok-123", time.time() + 3600, "sa@example.iam.gserviceaccount.com")

first_token.HANDOVER_DEADLINE_S = float(sys.argv[2])
assert first_token.start(Source(sys.argv[1]), {}) is True
results = []
for worker in range(int(sys.argv[3])):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        grandchild = os.fork()  # a library forking in the worker: its child must not take the worker's token
        if grandchild == 0:
            os._exit(3 if first_token.pending() else 0)
        _, status = os.waitpid(grandchild, 0)
        assert os.WEXITSTATUS(status) == 0, "a grandchild could take the token"
        began = time.monotonic()
        got = first_token.take("google", "aud")
        out = {"pending_after": first_token.pending(), "took_s": time.monotonic() - began,
               "token": got.token if got else None, "error": got.error if got else None}
        os.write(write_end, json.dumps(out).encode())
        os._exit(0)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 4096):
        data += chunk
    os.waitpid(pid, 0)
    results.append(json.loads(data))
print(json.dumps({"master_pending": first_token.pending(), "children": results}))
"""


def run(behaviour: str, deadline_s: float = 10.0, workers: int = 1) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), behaviour, str(deadline_s), str(workers)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_first_worker_takes_the_masters_token_and_a_later_one_gets_none() -> None:
    out = run("token", workers=2)
    first, second = out["children"]
    assert first["token"] == "tok-123" and first["pending_after"] is False
    assert second["token"] is None  # the pipe was drained: a restarted worker fetches by itself
    assert out["master_pending"] is False  # nothing is taken in the master


def test_a_failed_fetch_in_the_master_reaches_the_worker_as_its_reason() -> None:
    assert run("error")["children"][0] == {
        "pending_after": False,
        "took_s": pytest.approx(0, abs=5),
        "token": "",
        "error": "metadata server said no",
    }


@pytest.mark.parametrize("behaviour", ["raise", "other-audience"])
def test_no_usable_answer_means_the_worker_fetches_itself(behaviour: str) -> None:
    child = run(behaviour)["children"][0]
    assert child["token"] is None and child["error"] is None and child["pending_after"] is False


def test_the_worker_stops_waiting_at_the_deadline() -> None:
    child = run("hang", deadline_s=0.5)["children"][0]
    assert child["token"] is None
    assert 0.4 < child["took_s"] < 2.5  # the master's thread hangs for 3 s; the worker waited only to the deadline


def test_turned_off_or_not_google_it_does_not_start() -> None:
    code = textwrap.dedent("""
        from dagtrigger import first_token
        class Source:
            mode = "google"
            def handover(self): raise AssertionError
        class Bearer:
            mode = "bearer"
            def handover(self): raise AssertionError
        print(first_token.start(Source(), {"DAGTRIGGER_FIRST_TOKEN": "0"}), first_token.start(Bearer(), {}))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_google_auth_turns_the_masters_failure_into_credentials_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from dagtrigger import first_token
    from dagtrigger.airflow import no_redirect_session
    from dagtrigger.airflow_auth import GoogleAuth
    from dagtrigger.exceptions import CredentialsUnavailable
    from dagtrigger.first_token import FirstToken

    answers = iter([FirstToken("google", "aud", error="metadata server said no")])
    monkeypatch.setattr(first_token, "pending", lambda: True)
    monkeypatch.setattr(first_token, "take", lambda mode, audience: next(answers, None))
    auth = GoogleAuth("google", "aud", no_redirect_session())
    with pytest.raises(CredentialsUnavailable, match="metadata server said no"):
        auth._fetch()
    handed = FirstToken("google", "aud", "tok-9", time.time() + 3600, "sa@example.iam.gserviceaccount.com")
    answers = iter([handed])
    assert auth._fetch() == ("tok-9", handed.expires_at)
    assert auth.identity() == "service account sa@example.iam.gserviceaccount.com"
