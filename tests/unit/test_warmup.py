"""dagtrigger.warmup: the first event's work (token, API version, connection) done at start-up, off its path."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from dagtrigger import warmup
from dagtrigger.airflow import AirflowClient, TriggerCall
from dagtrigger.airflow_auth import StaticBearer
from dagtrigger.warmup import enabled, in_thread, start, warm
from devtools.fakes import Answer, FakeMetadataServer, FakeServer, Seen
from devtools.ports import free_port

LOG = logging.getLogger("test-warmup")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"K_SERVICE": "dagtrigger"}, True),  # Cloud Run
        ({"K_SERVICE": "dagtrigger", "DAGTRIGGER_WARMUP": "0"}, False),
        ({"DAGTRIGGER_WARMUP": "1"}, True),
        ({"DAGTRIGGER_WARMUP": "off"}, False),
    ],
)
def test_enabled_on_cloud_run_unless_turned_off(env: dict[str, str], expected: bool) -> None:
    assert enabled(env) is expected


def test_warm_up_probes_the_version_with_the_token_and_leaves_a_pooled_connection() -> None:
    def answer(seen: Seen) -> Answer:
        if seen.path == "/api/v2/version":
            return Answer(200, {"version": "3.3.2"})
        return Answer(200, {"dag_run_id": "r1"})

    with FakeServer(answer) as airflow:
        client = AirflowClient(airflow.url, StaticBearer("t0ken"), timeout_s=5)
        in_thread(client, LOG).join(10)
        assert client.api_version() == "v2"  # known now: the first event does not probe
        paths = [seen.path for seen in airflow.seen]
        # One request: the probe fetched the token and opened the connection. A second GET (as before) held that
        # connection while a first event, released by the probe, opened another one: a TLS handshake on its path.
        assert paths == ["/api/v2/version"]
        assert all(seen.headers.get("Authorization") == "Bearer t0ken" for seen in airflow.seen)
        # The first event's call goes over the connection the warm-up opened (same client port), not a new one.
        client.session.post(f"{airflow.url}/api/v2/dags/d/dagRuns", json={}, timeout=5)
        assert len({seen.peer for seen in airflow.seen}) == 1, [seen.peer for seen in airflow.seen]


def _pool(client: AirflowClient) -> HTTPConnectionPool:
    request = requests.Request("GET", client.base_url).prepare()
    adapter = client.session.get_adapter(client.base_url)
    assert isinstance(adapter, HTTPAdapter)
    pool = adapter.get_connection_with_tls_context(request, client.session.verify)
    assert isinstance(pool, HTTPConnectionPool)
    return pool


def test_warm_up_with_a_configured_version_confirms_it_and_leaves_a_pooled_connection() -> None:
    with FakeServer(lambda seen: Answer(200, {"version": "2.11.2", "dag_run_id": "r1"})) as airflow:
        client = AirflowClient(airflow.url, StaticBearer("t0ken"), api_version="v1", timeout_s=5)
        assert warm(client, LOG) is True
        assert [(seen.path, seen.headers.get("Authorization")) for seen in airflow.seen] == [
            ("/api/v1/version", "Bearer t0ken")
        ]
        client.trigger(TriggerCall("d", "r1", {}))
        assert _pool(client).num_connections == 1  # the POST went over the connection the warm-up opened


def test_warm_up_corrects_a_configured_version_this_airflow_does_not_serve(caplog: pytest.LogCaptureFixture) -> None:
    def answer(seen: Seen) -> Answer:
        return Answer(200, {"version": "3.3.2"}) if seen.path.startswith("/api/v2/") else Answer(404, {})

    with FakeServer(answer) as airflow:
        client = AirflowClient(airflow.url, StaticBearer("t0ken"), api_version="v1", timeout_s=5)
        with caplog.at_level(logging.WARNING, logger="dagtrigger"):
            assert warm(client, LOG) is True
        assert client.api_version() == "v2"
        assert "[api-version-mismatch]" in caplog.text
        assert [seen.path for seen in airflow.seen] == ["/api/v1/version", "/api/v2/version"]


class _SlowToken(StaticBearer):
    """A token source that holds the warm-up until released, so a first event arrives while it runs."""

    def __init__(self) -> None:
        super().__init__("t0ken")
        self.asked = threading.Event()
        self.release = threading.Event()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not self.asked.is_set():
            self.asked.set()
            assert self.release.wait(10)
        return super().__call__(request)


@pytest.mark.parametrize("held_in", ["preload", "token"])
def test_a_first_event_during_the_warm_up_waits_for_its_connection_instead_of_opening_another(
    held_in: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AIRFLOW_API_VERSION set: before, an event arriving while the warm-up imported google-auth or fetched the token
    did not wait for it (the version was known) and opened its own connection next to the warm-up's (measured: two
    TLS handshakes at once, ~50 ms, and the first 2xx 7 % later than with auto)."""
    with FakeServer(lambda seen: Answer(200, {"version": "3.3.2", "dag_run_id": "r1"})) as airflow:
        auth = _SlowToken()
        if held_in == "preload":
            auth.release.set()
            held, go = threading.Event(), threading.Event()
            monkeypatch.setattr(warmup, "preload", lambda client: held.set() or go.wait(10))
        else:
            held, go = auth.asked, auth.release
        client = AirflowClient(airflow.url, auth, api_version="v2", timeout_s=5)
        warming = in_thread(client, LOG)
        assert held.wait(10)
        event = threading.Thread(target=client.trigger, args=(TriggerCall("d", "r1", {}),))
        event.start()
        go.set()
        warming.join(10)
        event.join(10)
        assert [seen.path for seen in airflow.seen] == ["/api/v2/version", "/api/v2/dags/d/dagRuns"]
        assert _pool(client).num_connections == 1


def test_warm_up_never_fails_start_up_when_airflow_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    client = AirflowClient(f"http://127.0.0.1:{free_port()}", StaticBearer("t"), timeout_s=1, retry_budget_s=0.5)
    with caplog.at_level(logging.INFO, logger="test-warmup"):
        assert warm(client, LOG) is False
    assert "warm-up skipped" in caplog.text


class _Forks:
    """Stands in for os.register_at_fork: records the hook, and runs it as the forked worker would."""

    def __init__(self) -> None:
        self.hooks: list[Callable[[], None]] = []

    def register(self, *, after_in_child: Callable[[], None]) -> None:
        self.hooks.append(after_in_child)


@pytest.mark.parametrize(("env", "warmed"), [({}, False), ({"DAGTRIGGER_WARMUP": "1"}, True)])
def test_the_worker_warms_up_only_when_enabled(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], warmed: bool
) -> None:
    forks = _Forks()
    monkeypatch.setattr(warmup.os, "register_at_fork", forks.register)
    with FakeServer(lambda seen: Answer(200, {"version": "3.3.2"})) as airflow:
        client = AirflowClient(airflow.url, StaticBearer("t"), timeout_s=5)
        assert start(client, LOG, env) is warmed
        parent = os.getpid()
        monkeypatch.setattr(warmup.os, "getppid", lambda: parent)  # as in gunicorn's worker
        threads_before = set(threading.enumerate())
        for hook in forks.hooks:
            hook()
        for thread in set(threading.enumerate()) - threads_before:
            thread.join(10)
        assert bool(airflow.seen) is warmed  # off: not one request; on: the worker probed Airflow


class _GoogleLike(StaticBearer):
    mode = "google"


def test_preload_imports_google_auth_with_the_collector_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(warmup.importlib, "import_module", lambda name: seen.append((name, gc.isenabled())))
    assert gc.isenabled()
    assert warmup.preload(AirflowClient("http://127.0.0.1:9", _GoogleLike("t"))) is True
    assert [name for name, _ in seen] == list(warmup.GOOGLE_TOKEN_MODULES)
    assert not any(enabled for _, enabled in seen)  # paused while importing
    assert gc.isenabled()  # and on again


def test_preload_does_nothing_without_google_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(warmup.importlib, "import_module", seen.append)
    assert warmup.preload(AirflowClient("http://127.0.0.1:9", StaticBearer("t"))) is False
    assert seen == []


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with warmup.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_first_event_during_the_warm_up_uses_the_version_it_corrects() -> None:
    """Found against real Airflow: the event read the configured (wrong) version before the warm-up corrected it."""

    def answer(seen: Seen) -> Answer:
        if not seen.path.startswith("/api/v2/"):
            return Answer(404, {"detail": "Not Found"})
        return Answer(200, {"version": "3.3.2", "dag_run_id": "r1"})

    with FakeServer(answer) as airflow:
        auth = _SlowToken()
        client = AirflowClient(airflow.url, auth, api_version="v1", timeout_s=5)
        warming = in_thread(client, LOG)
        assert auth.asked.wait(10)
        replies = []
        event = threading.Thread(target=lambda: replies.append(client.trigger(TriggerCall("d", "r1", {}))))
        event.start()
        auth.release.set()
        warming.join(10)
        event.join(10)
        assert [(reply.status, reply.api_version) for reply in replies] == [(200, "v2")]
        assert [seen.path for seen in airflow.seen] == ["/api/v1/version", "/api/v2/version", "/api/v2/dags/d/dagRuns"]


def test_preload_covers_what_the_first_google_token_imports(tmp_path: Path) -> None:
    """Whatever google.auth.default() and the first refresh import after the preload is imported with the collector
    running (before: google.oauth2.credentials with reauth and webauthn, imported by default())."""
    code = (
        "import importlib, sys\n"
        "from dagtrigger import airflow, warmup\n"
        "for name in warmup.GOOGLE_TOKEN_MODULES: importlib.import_module(name)\n"
        "before = set(sys.modules)\n"
        "import google.auth, google.auth.transport.requests\n"
        "credentials, _ = google.auth.default(scopes=['https://www.googleapis.com/auth/cloud-platform'])\n"
        "credentials.refresh(google.auth.transport.requests.Request(session=airflow.no_redirect_session()))\n"
        "print(sorted(m for m in set(sys.modules) - before if m.startswith(('google', 'cryptography'))))\n"
    )
    with FakeMetadataServer() as metadata:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_METADATA", "CLOUDSDK"))}
        env.update(metadata.env(), CLOUDSDK_CONFIG=str(tmp_path))
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
