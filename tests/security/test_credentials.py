"""Findings 4 and 5: credentials never follow a redirect; Airflow's answers reach nobody unredacted."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import Answer, FakeServer, Seen
from tests.support.storage_emulator import storage_emulator

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration  # starts real function processes

PASSWORD = "op-password-9f8e7d"
BASIC = base64.b64encode(f"op-user:{PASSWORD}".encode()).decode()


def test_the_airflow_password_never_follows_a_redirect(routes_file: Path, tmp_path: Path) -> None:
    with FakeServer(lambda seen: Answer(200, {"access_token": "stolen"})) as evil:

        def airflow(seen: Seen) -> Answer:
            if seen.path.startswith("/auth/token"):
                return Answer(307, b"", {"Location": evil.url + "/auth/token"})
            if seen.path.endswith("/dagRuns"):
                return Answer(307, b"", {"Location": evil.url + seen.path})
            return Answer(200, {"version": "3"})

        with FakeServer(airflow) as fake:
            env = webhook_env(fake.url, routes_file, AIRFLOW_AUTH="airflow-jwt")
            with FunctionProcess("trigger_http", env, tmp_path) as fn:
                out = webhook_request(fn.url, {"order": 1}, "/shop", SECRET, "k-1")
                reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=60)
                assert reply.status_code in (502, 503), reply.text
                logs = fn.output()
        assert evil.seen == [], [s.path for s in evil.seen]
        assert PASSWORD not in logs


def test_dag_runs_call_never_follows_a_redirect(routes_file: Path, tmp_path: Path) -> None:
    with FakeServer(lambda seen: Answer(200, {"dag_run_id": "x"})) as evil:

        def airflow(seen: Seen) -> Answer:
            if seen.path.endswith("/dagRuns"):
                return Answer(302, b"", {"Location": evil.url + seen.path})
            return Answer(200, {"version": "3"})

        with FakeServer(airflow) as fake:
            with FunctionProcess("trigger_http", webhook_env(fake.url, routes_file), tmp_path) as fn:
                out = webhook_request(fn.url, {"order": 1}, "/shop", SECRET, "k-2")
                reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=60)
                # A redirect is not transient: answered at once (502, not a 503 the sender retries forever).
                assert reply.status_code == 502, reply.text
                assert "redirect" in fn.output().lower()
        assert evil.seen == []


def _echoing_airflow(seen: Seen) -> Answer:
    if seen.path.endswith("/dagRuns"):
        echoed = {k: v for k, v in seen.headers.items()}
        return Answer(400, {"detail": f"bad request {json.dumps(echoed)} at http://airflow.internal:8080/secret-path"})
    return Answer(200, {"version": "3"})


def test_echoed_credentials_reach_neither_the_caller_nor_the_dead_letter(routes_file: Path, tmp_path: Path) -> None:
    with storage_emulator() as gcs, FakeServer(_echoing_airflow) as fake:
        gcs.create_bucket("dead-letters")
        env = webhook_env(fake.url, routes_file, DEAD_LETTER_URI="gs://dead-letters/dl", **gcs.env())
        with FunctionProcess("trigger_http", env, tmp_path) as fn:
            out = webhook_request(fn.url, {"order": 1}, "/shop", SECRET, "k-3")
            reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=60)
            logs = fn.output()
        records = [b.download_as_text() for b in gcs.client().list_blobs("dead-letters")]
    assert reply.status_code == 502, reply.text
    assert len(records) == 1
    for where, text in (("answer", reply.text), ("dead letter", records[0]), ("logs", logs)):
        assert BASIC not in text, where
        assert PASSWORD not in text, where
    # The caller learns the outcome, not the internals: no Airflow URL, no Airflow user.
    assert fake.url.split("//")[1] not in reply.text
    assert "airflow.internal" not in reply.text
    assert "op-user" not in reply.text


def test_the_version_probe_never_follows_a_redirect(routes_file: Path, tmp_path: Path) -> None:
    with FakeServer(lambda seen: Answer(200, {"version": "3"})) as evil:

        def airflow(seen: Seen) -> Answer:
            return Answer(301, b"", {"Location": evil.url + seen.path})

        with FakeServer(airflow) as fake:
            env = webhook_env(fake.url, routes_file, AIRFLOW_API_VERSION="auto")
            with FunctionProcess("trigger_http", env, tmp_path) as fn:
                out = webhook_request(fn.url, {"order": 1}, "/shop", SECRET, "k-4")
                reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=60)
                assert reply.status_code == 502, reply.text  # a clear failure, not a 503 retried forever
                assert "[airflow-redirect]" in fn.output()
        assert evil.seen == []
        assert fake.requests_to("/version")[0].headers.get("Authorization", "").startswith("Basic ")
