"""Bad input is answered, never crashed on, and never makes the function log a secret.

Thousands of generated CloudEvents (binary and structured), Pub/Sub push envelopes and webhooks go through the WSGI
app in process (``functions_framework.create_app`` + Flask's test client), then a smaller sample through a real
``functions-framework`` process. Behind the function a fake Airflow answers 200 to everything, so a 5xx could only
come from the input handling. Properties:

- never a 5xx, never a crash (functions-framework's ``X-Google-Status: crash``), the process stays up;
- a 4xx always carries a JSON object with the reason (``error``, or ``reason`` for a refused conf);
- well-formed events (any object name, metadata, message bytes or attributes) are always 2xx;
- no bearer token, basic credentials, password or webhook secret appears in any log line or answer — with real
  secrets configured (``AIRFLOW_AUTH=bearer``/``basic``, ``WEBHOOK_HMAC_SECRET``) and really sent to the fake.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dagtrigger import logs
from dagtrigger.settings import Settings
from dagtrigger.signature import SignedRequest, sign
from devtools.localfunction import FunctionProcess
from tests.fuzz import strategies as fz
from tests.support.fakes import Answer, FakeServer, Seen

REPO = Path(__file__).resolve().parents[2]
TOKEN = "fuzz-static-bearer-TOKEN-7c1e9a52b3d84f06"
USERNAME = "fuzz-operator"
PASSWORD = "fuzz-PASSWORD-5d2b8e61f0a9"
WEBHOOK_SECRET = "fuzz-WEBHOOK-SECRET-0b7f3c9e41d2"
BASIC = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
SECRETS = {"bearer token": TOKEN, "password": PASSWORD, "webhook secret": WEBHOOK_SECRET, "basic credentials": BASIC}
SETTING_PREFIXES = ("AIRFLOW_", "WEBHOOK_", "DAG_ID", "ROUTES_FILE", "DEAD_LETTER_URI", "MAX_", "STORAGE_", "PUSH_")
MAX_BODY_BYTES = 4096  # small, so generated bodies cross it and exercise the 413 path

FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
# A bare `pytest` (what a developer runs after each change) fuzzes a fifth of the cases; devtools/run-tests.sh (CI)
# sets DAGTRIGGER_FUZZ_SCALE=1 for all of them.
_SCALE = float(os.environ.get("DAGTRIGGER_FUZZ_SCALE", "0.2"))


def examples(full: int) -> int:
    return max(20, int(full * _SCALE))


def leaks(text: str) -> list[str]:
    return [what for what, secret in SECRETS.items() if secret in text]


class _Collector(logging.Handler):
    """Every record any other logger emits (flask, werkzeug, urllib3, google-auth), formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class App:
    """One in-process app (one entry point, one configuration) and everything it logged."""

    name: str
    client: FlaskClient
    settings: Settings
    stream: io.StringIO = field(default_factory=io.StringIO)
    collector: _Collector = field(default_factory=_Collector)

    def activate(self) -> None:
        """Point the (process-wide) dagtrigger logger at this app, as its own start-up did, but into our buffer."""
        logs.configure(self.settings.log_level, self.settings.secrets(), self.stream)

    def drain(self) -> str:
        text = self.stream.getvalue() + "\n".join(self.collector.lines)
        self.stream.seek(0)
        self.stream.truncate()
        self.collector.lines.clear()
        return text


@pytest.fixture(scope="module")
def airflow() -> Iterator[FakeServer]:
    """A fake Airflow that answers 200 to everything (version probe and trigger call alike)."""

    def ok(seen: Seen) -> Answer:
        return Answer(200, {"dag_run_id": "fuzz", "state": "queued", "version": "fuzz"})

    with FakeServer(ok) as server:
        yield server


def _env(airflow: FakeServer, **extra: str) -> dict[str, str]:
    return {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "dagtrigger_example",
        "AIRFLOW_API_VERSION": "auto",
        "AIRFLOW_TOKEN": TOKEN,
        "AIRFLOW_USERNAME": USERNAME,
        "AIRFLOW_PASSWORD": PASSWORD,
        "AIRFLOW_TIMEOUT_SECONDS": "2",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "1",
        "STORAGE_EVENT_TYPES": "finalized,deleted,archived,metadataUpdated",
        "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "LOG_LEVEL": "DEBUG",
        **extra,
    }


@contextlib.contextmanager
def in_process(name: str, target: str, signature: str, env: Mapping[str, str]) -> Iterator[App]:
    """``create_app`` re-executes main.py (reading settings from os.environ) and writes FUNCTION_TARGET,
    FUNCTION_SIGNATURE_TYPE, ``sys.modules["main"]``, ``sys.path`` and the dagtrigger logger: all of it is undone
    afterwards. Every logger is captured at DEBUG while the app lives (urllib3's and google-auth's lines too)."""
    ours, root = logs.get_logger(), logging.getLogger()
    saved = (ours.level, root.level)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ours, "handlers", list(ours.handlers))
        mp.setattr(ours, "propagate", ours.propagate)
        for variable in list(os.environ):
            if variable.startswith(SETTING_PREFIXES):
                mp.delenv(variable)
        for variable, value in {**env, "FUNCTION_TARGET": target, "FUNCTION_SIGNATURE_TYPE": signature}.items():
            mp.setenv(variable, value)
        mp.delitem(sys.modules, "main", raising=False)
        mp.setattr(sys, "path", list(sys.path))
        flask_app = functions_framework.create_app(target, str(REPO / "main.py"), signature)  # type: ignore[no-untyped-call]
        app = App(name, flask_app.test_client(), sys.modules["main"].PIPELINE.settings)
        root.addHandler(app.collector)
        root.setLevel(logging.DEBUG)
        try:
            yield app
        finally:
            root.removeHandler(app.collector)
            ours.setLevel(saved[0])
            root.setLevel(saved[1])


@pytest.fixture(scope="module")
def event_app(airflow: FakeServer) -> Iterator[App]:
    with in_process("event/bearer", "trigger_event", "cloudevent", _env(airflow, AIRFLOW_AUTH="bearer")) as app:
        yield app


@pytest.fixture(scope="module")
def http_app(airflow: FakeServer) -> Iterator[App]:
    env = _env(airflow, AIRFLOW_AUTH="basic", WEBHOOK_HMAC_SECRET=WEBHOOK_SECRET)
    with in_process("http/basic/signed", "trigger_http", "http", env) as app:
        yield app


@pytest.fixture(scope="module")
def open_http_app(airflow: FakeServer) -> Iterator[App]:
    """No webhook secret: every body reaches the parsers (signed bodies mostly stop at the signature)."""
    env = _env(airflow, AIRFLOW_AUTH="bearer", WEBHOOK_AUTH="cloud-run-iam")
    with in_process("http/bearer/open", "trigger_http", "http", env) as app:
        yield app


def check(status: int, headers: Mapping[str, str], body: bytes, logged: str, case: Any) -> None:
    """The properties every answer must have, whatever the input."""
    where = f"input {case!r:.600}\nanswer {status} {body[:400]!r}"
    found = leaks(logged) + [f"{what} (in the answer)" for what in leaks(body.decode("utf-8", "replace"))]
    assert not found, f"leaked {found}: {where}\n{logged[-2000:]}"
    assert status < 500, f"5xx for bad input: {where}\n{logged[-3000:]}"
    assert headers.get("X-Google-Status") != "crash", where
    if 400 <= status < 500:
        try:
            reason = json.loads(body)
        except ValueError:
            reason = None
        assert isinstance(reason, dict), f"a {status} without a JSON reason: {where}"
        assert isinstance(reason.get("error") or reason.get("reason"), str), where


def _send(app: App, headers: Mapping[str, str], body: bytes, *, path: str = "/", method: str = "POST") -> None:
    response = app.client.open(path, method=method, headers=dict(headers), data=body)
    check(response.status_code, dict(response.headers), response.get_data(), app.drain(), (method, path, headers, body))


# ------------------------------------------------------------------------------------------------ in process: events


@settings(FUZZ, max_examples=examples(1500))
@given(case=fz.binary_cloud_events())
def test_binary_cloud_events(event_app: App, case: tuple[dict[str, str], bytes]) -> None:
    event_app.activate()
    _send(event_app, *case)


@settings(FUZZ, max_examples=examples(500))
@given(case=fz.structured_cloud_events())
def test_structured_cloud_events(event_app: App, case: tuple[dict[str, str], bytes]) -> None:
    event_app.activate()
    _send(event_app, *case)


@settings(FUZZ, max_examples=examples(300))
@given(case=fz.valid_storage_events() | fz.valid_pubsub_events())
def test_well_formed_events_are_always_2xx(event_app: App, case: tuple[dict[str, str], bytes]) -> None:
    event_app.activate()
    headers, body = case
    response = event_app.client.post("/", headers=headers, data=body)
    assert response.status_code == 200, (case, response.get_data()[:400])
    assert not leaks(event_app.drain())


# ---------------------------------------------------------------------------------------- in process: webhooks, push


@settings(FUZZ, max_examples=examples(700))
@given(
    body=fz.webhook_bodies | fz.push_bodies,
    path=fz.webhook_paths,
    key=fz.idempotency_keys,
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x-www-form-urlencoded"]),
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE"]),
)
def test_webhooks_and_push_without_a_secret(
    open_http_app: App, body: bytes, path: str, key: str | None, content_type: str, method: str
) -> None:
    open_http_app.activate()
    headers = {"Content-Type": content_type} if content_type else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    _send(open_http_app, headers, body, path=path, method=method)


@settings(FUZZ, max_examples=examples(700))
@given(data=st.data(), body=fz.webhook_bodies | fz.push_bodies, path=fz.webhook_paths, key=fz.idempotency_keys)
def test_signed_webhooks_and_push(http_app: App, data: st.DataObject, body: bytes, path: str, key: str | None) -> None:
    http_app.activate()
    headers = {"Content-Type": "application/json"}
    signature = data.draw(fz.signature_for(WEBHOOK_SECRET, body, path, (key or "").strip()), label="signature")
    if signature is not None:
        headers["X-Dagtrigger-Signature"] = signature
    if key is not None:
        headers["Idempotency-Key"] = key
    _send(http_app, headers, body, path=path)


@settings(FUZZ, max_examples=examples(200))
@given(payload=st.dictionaries(st.text(max_size=20), fz.json_values, max_size=6), key=fz.idempotency_keys)
def test_well_formed_signed_webhooks_are_always_2xx(http_app: App, payload: dict[str, Any], key: str | None) -> None:
    http_app.activate()
    body = json.dumps(payload).encode()
    assume(len(body) <= MAX_BODY_BYTES)  # counted by hypothesis as a rejected example, not passed silently
    headers = {"Content-Type": "application/json"}
    if key and len(key) <= 2048 and key.strip():
        headers["Idempotency-Key"] = key.strip()
    signed = SignedRequest("POST", "/", "", headers.get("Idempotency-Key", ""), body)
    headers["X-Dagtrigger-Signature"] = sign(WEBHOOK_SECRET, signed)
    response = http_app.client.post("/", headers=headers, data=body)
    assert response.status_code == 200, (payload, key, response.get_data()[:400])
    assert not leaks(http_app.drain() + response.get_data(as_text=True))


def test_the_credentials_are_on_the_wire(airflow: FakeServer, event_app: App, http_app: App) -> None:
    """The leak checks mean something only if the credentials were really used: both kinds reach the fake."""
    event_app.activate()
    headers = {**storage_headers(), "ce-id": "wire-1"}
    body = json.dumps({"bucket": "landing", "name": "wire.csv", "generation": "1"}).encode()
    assert event_app.client.post("/", headers=headers, data=body).status_code == 200
    http_app.activate()
    payload = b'{"wire": 1}'
    signature = sign(WEBHOOK_SECRET, SignedRequest("POST", "/", "", "", payload))
    signed = {"Content-Type": "application/json", "X-Dagtrigger-Signature": signature}
    assert http_app.client.post("/", headers=signed, data=payload).status_code == 200
    sent = {seen.headers.get("Authorization") for seen in airflow.seen}
    assert f"Bearer {TOKEN}" in sent and f"Basic {BASIC}" in sent
    assert not leaks(event_app.drain() + http_app.drain())


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content-Type": "application/json"}, b"{}"),  # no ce- headers: functions-framework's HTML 400
        ({"ce-id": "1", "ce-source": "s", "ce-type": "t", "Content-Type": "text/plain"}, b"x"),  # HTML 415
        ({"Content-Type": "application/json"}, b"\x80"),  # not UTF-8: UnicodeDecodeError in from_http, 500
        ({"Content-Type": "application/cloudevents+json"}, b'" "'),  # JSON, not an object: TypeError, 500
    ],
    ids=["not-a-cloudevent", "no-specversion", "not-utf8", "json-string"],
)
def test_requests_rejected_before_main_get_a_json_4xx(event_app: App, headers: dict[str, str], body: bytes) -> None:
    event_app.activate()
    response = event_app.client.post("/", headers=headers, data=body)
    event_app.drain()
    assert 400 <= response.status_code < 500, response.status_code
    assert isinstance(response.get_json(silent=True), dict) and "error" in response.get_json(), response.get_data()


# --------------------------------------------------------------------- secrets echoed back by a misbehaving server


ECHO_STATUSES = (400, 401, 403, 404, 422, 500, 502)


@pytest.mark.parametrize("status", ECHO_STATUSES)
@pytest.mark.parametrize("auth", ["bearer", "basic"])
def test_secrets_echoed_by_airflow_are_not_logged(status: int, auth: str) -> None:
    """A proxy or debug page that echoes the request headers in its error body: the reason we log (Airflow's own
    message) must still not carry the credentials."""

    def echo(seen: Seen) -> Answer:
        if seen.path.endswith("/version"):
            return Answer(200, {"version": "echo"})
        dump = "\n".join(f"{k}: {v}" for k, v in seen.headers.items())
        return Answer(status, f"<html><body><h1>Error {status}</h1><pre>{dump}</pre></body></html>")

    with FakeServer(echo) as server:
        env = _env(server, AIRFLOW_AUTH=auth, AIRFLOW_RETRY_BUDGET_SECONDS="0")
        with in_process(f"echo/{auth}", "trigger_event", "cloudevent", env) as app:
            app.activate()
            headers = {**storage_headers(), "ce-id": f"echo-{auth}-{status}"}
            body = json.dumps({"bucket": "landing", "name": "x.csv", "generation": "1"}).encode()
            response = app.client.post("/", headers=headers, data=body)
            logged = app.drain()
        echoed = [s.headers.get("Authorization", "") for s in server.seen if s.path.endswith("/dagRuns")]
    assert echoed and all(SECRETS["bearer token"] in a or SECRETS["basic credentials"] in a for a in echoed)
    assert f"Airflow answered {status}" in logged  # Airflow's page was logged…
    assert not leaks(logged), logged  # …without the credentials it echoed
    assert response.status_code in (200, 503)


def storage_headers() -> dict[str, str]:
    return {
        "ce-source": "//storage.googleapis.com/projects/_/buckets/landing",
        "ce-specversion": "1.0",
        "ce-type": fz.STORAGE_TYPES[0],
        "ce-subject": "objects/x.csv",
        "Content-Type": "application/json",
    }


# ------------------------------------------------------------------------------------- a sample on a real process


@pytest.fixture(scope="module")
def real_event(airflow: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionProcess]:
    env = _env(airflow, AIRFLOW_AUTH="bearer")
    with FunctionProcess("trigger_event", env, tmp_path_factory.mktemp("fuzz-event")) as process:
        yield process


@pytest.fixture(scope="module")
def real_http(airflow: FakeServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FunctionProcess]:
    env = _env(airflow, AIRFLOW_AUTH="basic", WEBHOOK_HMAC_SECRET=WEBHOOK_SECRET)
    with FunctionProcess("trigger_http", env, tmp_path_factory.mktemp("fuzz-http")) as process:
        yield process


def _send_real(process: FunctionProcess, headers: Mapping[str, str], body: bytes, case: Any) -> None:
    """Raw ``http.client``: it sends header values (leading spaces, Latin-1) that ``requests`` refuses to."""
    process.mark()  # check() sees only what this request made the process write
    connection = http.client.HTTPConnection("127.0.0.1", process.port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=dict(headers))
        response = connection.getresponse()
        status, answer_headers, answer = response.status, dict(response.getheaders()), response.read()
    except (OSError, http.client.HTTPException) as exc:
        pytest.fail(f"no answer ({exc!r}) for {case!r:.600}:\n{process.output()[-3000:]}")
    finally:
        connection.close()
    assert process.proc is not None and process.proc.poll() is None, f"the function died on {case!r:.600}"
    check(status, answer_headers, answer, process.output(), case)


@pytest.mark.integration
@settings(FUZZ, max_examples=examples(150))
@given(case=fz.binary_cloud_events() | fz.structured_cloud_events())
def test_real_process_events(real_event: FunctionProcess, case: tuple[dict[str, str], bytes]) -> None:
    _send_real(real_event, *case, case)


@pytest.mark.integration
@settings(FUZZ, max_examples=examples(150))
@given(data=st.data(), body=fz.webhook_bodies | fz.push_bodies)
def test_real_process_webhooks_and_push(real_http: FunctionProcess, data: st.DataObject, body: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    signature = data.draw(fz.signature_for(WEBHOOK_SECRET, body), label="signature")
    if signature is not None:
        headers["X-Dagtrigger-Signature"] = signature
    _send_real(real_http, headers, body, (headers, body))


@pytest.mark.integration
def test_real_processes_still_serve_after_the_fuzzing(real_event: FunctionProcess, real_http: FunctionProcess) -> None:
    headers = {**storage_headers(), "ce-id": "after-fuzzing"}
    body = json.dumps({"bucket": "landing", "name": "after.csv", "generation": "7"}).encode()
    assert real_event.session.post(real_event.url, headers=headers, data=body, timeout=30).status_code == 200
    payload = b'{"after": "fuzzing"}'
    signature = sign(WEBHOOK_SECRET, SignedRequest("POST", "/", "", "", payload))
    signed = {"Content-Type": "application/json", "X-Dagtrigger-Signature": signature}
    assert real_http.session.post(real_http.url, headers=signed, data=payload, timeout=30).status_code == 200
    for process in (real_event, real_http):
        output = process.log_path.read_text(errors="replace")
        ours = (f'File "{REPO / "main.py"}"', f'File "{REPO / "dagtrigger"}/')
        assert not any(frame in output for frame in ours), output[-3000:]  # no traceback through our code
        assert not leaks(output)
