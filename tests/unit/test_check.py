"""``python -m dagtrigger check``: the symptom → fix table, the pure classifiers, and whole runs against fakes.

The fakes answer exactly what real servers were measured to answer (bodies below): Airflow 2.11.2 with
``api.auth_backends = airflow.api.auth.backend.deny_all`` and Airflow 3.3.2 for an Op user; the web server's IP
filter is a 403 HTML page. Real Airflow is in tests/integration/test_check_real_airflow.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NameResolutionError

from dagtrigger import cli
from dagtrigger.check import (
    FIXES,
    PROBE_BODY,
    PROBE_MARKER,
    CheckReport,
    Facts,
    Status,
    Step,
    Symptom,
    classify_denial,
    classify_exception,
    classify_probe,
    dag_state_symptoms,
    dags_to_check,
    fix_for,
    run_check,
)
from dagtrigger.rules import parse_rules
from dagtrigger.settings import AUTH_MODES
from tests.support.fakes import Answer, FakeMetadataServer, FakeServer, Seen, free_port

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = {"Content-Type": "application/problem+json"}
# Measured: Airflow 2.11.2, any caller, any call but /version, when the API is disabled (deny_all) — the same body
# as for a wrong basic-auth password and for a Viewer's POST.
AIRFLOW2_FORBIDDEN = {
    "detail": None,
    "status": 403,
    "title": "Forbidden",
    "type": "https://airflow.apache.org/docs/apache-airflow/2.11.2/stable-rest-api-ref.html#section/Errors/PermissionDenied",
}
# Measured: Airflow 2.11.2 and 3.3.2, an Op user POSTing PROBE_BODY.
AIRFLOW2_PROBE_400 = {
    "detail": "{'logical_date': ['Field may not be null.'], 'dagtrigger_check': ['Unknown field.']}",
    "status": 400,
    "title": "Bad Request",
    "type": "https://airflow.apache.org/docs/apache-airflow/2.11.2/stable-rest-api-ref.html#section/Errors/BadRequest",
}
AIRFLOW3_PROBE_422 = {
    "detail": [
        {
            "type": "extra_forbidden",
            "loc": ["body", "dagtrigger_check"],
            "msg": "Extra inputs are not permitted",
            "input": "this request is refused on purpose",
        }
    ]
}
IP_FILTER_PAGE = (
    "<!DOCTYPE html><html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1>"
    "<p>Your client does not have permission to get URL /api/v2/version from this server. IP not allowed.</p>"
    "</body></html>"
)


def env(url: str, **extra: str) -> dict[str, str]:
    return {"AIRFLOW_URI": url, "DAG_ID": "example_dag", "AIRFLOW_AUTH": "none", **extra}


def by_name(report: CheckReport) -> dict[str, Step]:
    return {step.name: step for step in report.steps}


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("symptom", list(Symptom))
@pytest.mark.parametrize("auth", AUTH_MODES)
def test_every_symptom_has_a_fix_for_every_auth_mode(symptom: Symptom, auth: str) -> None:
    assert "*" in FIXES[symptom]
    text = fix_for(symptom, Facts(auth=auth, uri="https://x", identity="service account a@b", dag_id="d"))
    assert text and "{" not in text and "}" not in text


@pytest.mark.parametrize(
    ("symptom", "auth", "needles"),
    [
        (Symptom.CREDENTIALS_REJECTED, "google", ["roles/composer.user", "accounts.google.com:NUMERIC_USER_ID",
                                                 "deploy/register-airflow-user.sh", "deny_all"]),
        (Symptom.CREDENTIALS_REJECTED, "basic", ["AIRFLOW_PASSWORD", "basic_auth", "deny_all"]),
        (Symptom.NO_TRIGGER_PERMISSION, "google", ["Op", "register-airflow-user.sh"]),
        (Symptom.NO_TRIGGER_PERMISSION, "airflow-jwt", ["Op", "simple_auth_manager_users"]),
        (Symptom.IP_FILTER, "google", ["--web-server-allow-all", "deploy/network.sh", "static egress IP"]),
        (Symptom.TIMEOUT, "google", ["AIRFLOW_URI", "VPC", "deploy/network.sh"]),
        (Symptom.DNS_FAILURE, "google", ["private IP", "deploy/network.sh"]),
        (Symptom.DAG_PAUSED, "basic", ["airflow dags unpause d", "toggle"]),
        (Symptom.DAG_NOT_FOUND, "basic", ["'d'", "not parsed", "Import errors"]),
        (Symptom.LOGIN_REDIRECT, "google", ["config.airflowUri", "id-token"]),
        (Symptom.LONG_SA_EMAIL, "google", ["accounts.google.com:NUMERIC_USER_ID", "oauth2ClientId"]),
    ],
)  # fmt: skip
def test_fix_names_the_remedy(symptom: Symptom, auth: str, needles: list[str]) -> None:
    text = fix_for(symptom, Facts(auth=auth, uri="https://x", identity="someone", dag_id="d", user="u"))
    for needle in needles:
        assert needle in text


# --------------------------------------------------------------------------- classifiers


@pytest.mark.parametrize(
    ("status", "content_type", "location", "expected"),
    [
        (302, "text/html", "/login/?next=%2Fapi%2Fv1%2Fdags", Symptom.LOGIN_REDIRECT),
        (302, "", "https://accounts.google.com/ServiceLogin?continue=x", Symptom.LOGIN_REDIRECT),
        (308, "", "https://airflow.example.com/", Symptom.REDIRECT),
        (403, "text/html; charset=utf-8", "", Symptom.IP_FILTER),
        (403, "", "", Symptom.IP_FILTER),
        (401, "text/html", "", Symptom.PROXY_401),
        (403, "application/problem+json", "", Symptom.CREDENTIALS_REJECTED),
        (401, "application/json", "", Symptom.CREDENTIALS_REJECTED),
        (200, "application/json", "", None),
        (404, "application/json", "", None),
    ],
)
def test_classify_denial(status: int, content_type: str, location: str, expected: Symptom | None) -> None:
    assert classify_denial(status, content_type, location) is expected


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (400, "application/problem+json", json.dumps(AIRFLOW2_PROBE_400), None),  # Op, Airflow 2
        (422, "application/json", json.dumps(AIRFLOW3_PROBE_422), None),  # Op, Airflow 3
        (403, "application/problem+json", json.dumps(AIRFLOW2_FORBIDDEN), Symptom.NO_TRIGGER_PERMISSION),
        (403, "application/json", '{"detail":"Forbidden"}', Symptom.NO_TRIGGER_PERMISSION),  # Viewer, Airflow 3
        (401, "application/json", '{"detail":"Not authenticated"}', Symptom.NO_TRIGGER_PERMISSION),
        (403, "text/html", IP_FILTER_PAGE, Symptom.IP_FILTER),
        (400, "application/json", '{"detail": "something else"}', Symptom.PROBE_INCONCLUSIVE),
        (500, "text/html", "<html>Ooops</html>", Symptom.PROBE_INCONCLUSIVE),
        (200, "application/json", '{"dag_run_id": "x"}', Symptom.PROBE_CREATED_RUN),
        (404, "application/json", '{"detail": "DAG not found"}', Symptom.DAG_NOT_FOUND),
    ],
)
def test_classify_probe(status: int, content_type: str, body: str, expected: Symptom | None) -> None:
    assert classify_probe(status, content_type, body) is expected


def test_probe_body_is_invalid_on_both_majors() -> None:
    """Each field alone makes Airflow refuse the request; none of them may be dropped by accident."""
    assert PROBE_BODY["logical_date"] is None  # Airflow 2: 'Field may not be null'
    assert PROBE_MARKER in PROBE_BODY  # Airflow 2 and 3: unknown / extra field
    assert " " in PROBE_BODY["dag_run_id"]  # both: outside ^[A-Za-z0-9_.~:+-]+$
    assert "conf" not in PROBE_BODY


def _connection_error(reason: BaseException) -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/api/v2/version", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_connection_error(NameResolutionError("nowhere.invalid", None, socket.gaierror(-2, "no name"))),
         Symptom.DNS_FAILURE),  # type: ignore[arg-type]
        (_connection_error(ConnectionRefusedError(111, "refused")), Symptom.CONNECTION_REFUSED),
        (requests.ConnectTimeout("connect timed out"), Symptom.TIMEOUT),
        (requests.ReadTimeout("read timed out"), Symptom.TIMEOUT),
        (requests.exceptions.SSLError("bad handshake"), Symptom.TLS_ERROR),
        (requests.ConnectionError(ConnectionResetError(104, "reset")), Symptom.CONNECTION_FAILED),
    ],
)  # fmt: skip
def test_classify_exception(exc: BaseException, expected: Symptom) -> None:
    assert classify_exception(exc) is expected


def test_a_real_refused_connection_is_classified_as_refused() -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert classify_exception(caught.value) is Symptom.CONNECTION_REFUSED


@pytest.mark.parametrize(
    ("dag", "expected"),
    [
        ({"is_paused": False, "is_active": True, "has_import_errors": False}, []),
        ({"is_paused": True, "is_active": True}, [Symptom.DAG_PAUSED]),  # Airflow 2 fields
        ({"is_paused": True, "is_stale": False}, [Symptom.DAG_PAUSED]),  # Airflow 3 fields
        ({"is_paused": False, "is_stale": True}, [Symptom.DAG_STALE]),
        ({"is_paused": False, "is_active": False, "has_import_errors": True},
         [Symptom.DAG_STALE, Symptom.DAG_IMPORT_ERRORS]),
    ],
)  # fmt: skip
def test_dag_state(dag: dict[str, Any], expected: list[Symptom]) -> None:
    assert dag_state_symptoms(dag) == expected


def test_dags_to_check_covers_routes_and_webhook_allowlists_once_in_order() -> None:
    rules = parse_rules(
        {
            "routes": [
                {"name": "a", "dag_id": "load", "match": {"kind": "storage"}},
                {"name": "b", "dag_id": "audit", "allow_dags": ["load", "adhoc"], "match": {"kind": "webhook"}},
                {"name": "c", "allow_dags": ["adhoc", "backfill"], "match": {"kind": "webhook"}},
            ]
        },
        "test",
    )
    assert dags_to_check(rules) == ("load", "audit", "adhoc", "backfill")


def test_report_exit_code_and_rendering() -> None:
    ok = Step("reachable", Status.OK, "answered")
    warn = Step("DAG 'd' is unpaused", Status.WARN, "paused", "unpause it", Symptom.DAG_PAUSED)
    fail = Step("may trigger 'd'", Status.FAIL, "403", "grant Op", Symptom.NO_TRIGGER_PERMISSION)
    assert CheckReport((ok, warn)).exit_code == 0
    assert CheckReport((ok, warn, fail)).exit_code == 1
    text = CheckReport((ok, warn, fail)).render()
    assert "✓ reachable: answered" in text and "⚠ DAG 'd' is unpaused" in text and "✗ may trigger 'd'" in text
    assert "    fix: grant Op" in text
    as_json = CheckReport((ok, fail)).as_json()
    assert as_json["ok"] is False and as_json["steps"][1]["symptom"] == "no-trigger-permission"


# --------------------------------------------------------------------------- whole runs against fakes


def airflow_like(version: str = "v2", *, paused: bool = False, probe: Answer | None = None, **dag: Any):
    """A handler answering as real Airflow does for an Op user (measured answers), for the DAG 'example_dag'."""

    def handle(seen: Seen) -> Answer:
        path = seen.path.split("?")[0]
        if path.endswith("/version"):
            ok = path.startswith(f"/api/{version}/")
            return Answer(200, {"version": "3.3.2" if version == "v2" else "2.11.2"}) if ok else Answer(404, "nope")
        if seen.method == "GET" and path == f"/api/{version}/dags":
            return Answer(200, {"dags": [], "total_entries": 0})
        if seen.method == "GET" and path == f"/api/{version}/dags/example_dag":
            return Answer(200, {"dag_id": "example_dag", "is_paused": paused, "is_stale": False, **dag})
        if seen.method == "POST" and path == f"/api/{version}/dags/example_dag/dagRuns":
            return probe or Answer(422, AIRFLOW3_PROBE_422)
        return Answer(404, {"detail": "Not Found"})

    return handle


def test_ip_filter_403_html_page_is_named_with_its_fix() -> None:
    with FakeServer(lambda seen: Answer(403, IP_FILTER_PAGE)) as fake:
        report = run_check(env(fake.url), timeout_s=2)
    step = report.steps[-1]
    assert (step.name, step.status, step.symptom) == ("reachable", Status.FAIL, Symptom.IP_FILTER)
    assert "IP not allowed" in step.detail and "--web-server-allow-all" in step.fix and "deploy/network.sh" in step.fix
    assert report.exit_code == 1


def test_unreachable_url_is_connection_refused_with_its_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    report = run_check(env(url), timeout_s=2)
    step = report.steps[-1]
    assert (step.name, step.symptom) == ("reachable", Symptom.CONNECTION_REFUSED)
    assert url in step.fix and "AIRFLOW_URI" in step.fix
    assert report.exit_code == 1


def test_a_server_that_never_answers_is_a_timeout_within_the_bound() -> None:
    with FakeServer(lambda seen: Answer(200, {}, delay_s=3.0)) as fake:
        began = time.monotonic()
        report = run_check(env(fake.url), timeout_s=0.5)
        elapsed = time.monotonic() - began
    step = report.steps[-1]
    assert (step.name, step.symptom) == ("reachable", Symptom.TIMEOUT)
    assert "VPC" in step.fix and "deploy/network.sh" in step.fix and "0.5 s" in step.fix
    assert elapsed < 2.5


def test_airflow2_with_the_api_disabled_by_deny_all() -> None:
    """Measured on 2.11.2: /version answers, every other call is 403 — the fix names deny_all and its remedy."""

    def deny_all(seen: Seen) -> Answer:
        if seen.path == "/api/v1/version":
            return Answer(200, {"git_version": "", "version": "2.11.2"})
        if seen.path.startswith("/api/v2/"):
            return Answer(404, "<h1>Not Found</h1>")
        return Answer(403, AIRFLOW2_FORBIDDEN, PROBLEM_JSON)

    extra = {"AIRFLOW_AUTH": "basic", "AIRFLOW_USERNAME": "op", "AIRFLOW_PASSWORD": "op-password"}
    with FakeServer(deny_all) as fake:
        report = run_check(env(fake.url, **extra), timeout_s=2)
    steps = by_name(report)
    assert steps["API version"].status is Status.OK and "2.11.2" in steps["API version"].detail
    auth = steps["authentication"]
    assert (auth.status, auth.symptom) == (Status.FAIL, Symptom.CREDENTIALS_REJECTED)
    assert "airflow.api.auth.backend.deny_all" in auth.fix and "composer_auth" in auth.fix
    assert "op-password" not in report.render() and "Basic " not in report.render()
    assert report.steps[-1] is auth  # nothing is checked per DAG once Airflow refuses every call


def test_login_redirect_is_named() -> None:
    def redirect(seen: Seen) -> Answer:
        return Answer(302, "", {"Location": "http://127.0.0.1/login/?next=%2Fapi%2Fv2%2Fversion"})

    with FakeServer(redirect) as fake:
        report = run_check(env(fake.url), timeout_s=2)
    step = report.steps[-1]
    assert (step.name, step.symptom) == ("reachable", Symptom.LOGIN_REDIRECT)
    assert "/login/" in step.fix


def test_all_good_against_an_airflow_like_fake_posts_only_the_probe() -> None:
    with FakeServer(airflow_like()) as fake:
        report = run_check(env(fake.url), timeout_s=2)
        posts = [s for s in fake.seen if s.method == "POST"]
    assert report.exit_code == 0 and all(s.status is Status.OK for s in report.steps), report.render()
    assert [p.json() for p in posts] == [PROBE_BODY]
    assert all(s.headers.get("User-Agent") == "dagtrigger-check" for s in fake.seen)


@pytest.mark.parametrize(
    ("extra", "status", "needle"),
    [
        ({}, Status.OK, "set MAX_INSTANCES"),
        ({"MAX_INSTANCES": "3", "AIRFLOW_MAX_IN_FLIGHT": "4"}, Status.OK, "3 × 4 = 12 calls at once, within"),
        ({"MAX_INSTANCES": "3"}, Status.WARN, "3 × 8 = 24 calls at once, over AIRFLOW_CAPACITY=15"),
        ({"MAX_INSTANCES": "3", "AIRFLOW_CAPACITY": "80"}, Status.OK, "within AIRFLOW_CAPACITY=80"),
    ],
)
def test_instances_times_in_flight_is_checked_against_the_api_server_capacity(
    extra: dict[str, str], status: Status, needle: str
) -> None:
    with FakeServer(airflow_like()) as fake:
        report = run_check(env(fake.url, **extra), timeout_s=2)
    step = by_name(report)["Airflow's API server stays under its capacity"]
    assert step.status is status and needle in step.detail, step
    if status is Status.WARN:
        assert step.symptom is Symptom.AIRFLOW_OVERLOAD and report.exit_code == 0
        assert "sql_alchemy_pool_size" in report.render() and "--max-instances" in report.render()


@pytest.mark.parametrize(
    ("extra", "status", "needle"),
    [
        ({"DEAD_LETTER_URI": "gs://dead-letters/p"}, Status.WARN, "without DEAD_LETTER_SEAL_SECRET"),
        (
            {"DEAD_LETTER_URI": "gs://dead-letters/p", "DEAD_LETTER_SEAL_SECRET": "a2V5LW9mLXNpeHRlZW4tYnl0ZXM="},
            Status.OK,
            "records are sealed",
        ),
        ({}, None, ""),  # no dead letters: nothing to seal, no step
    ],
)
def test_dead_letters_without_a_seal_key_are_warned_about_with_the_fix(
    extra: dict[str, str], status: Status | None, needle: str
) -> None:
    with FakeServer(airflow_like()) as fake:
        report = run_check(env(fake.url, **extra), timeout_s=2)
    step = by_name(report).get("dead letters are sealed")
    if status is None:
        assert step is None
        return
    assert step is not None and step.status is status and needle in step.detail, step
    assert report.exit_code == 0
    if status is Status.WARN:
        assert step.symptom is Symptom.DEAD_LETTERS_UNSEALED
        assert "--secret DEAD_LETTER_SEAL_SECRET=dead-letter-seal:1" in report.render()


def test_stale_dag_with_import_errors_is_warned_about() -> None:
    with FakeServer(airflow_like(is_stale=True, has_import_errors=True)) as fake:
        report = run_check(env(fake.url), timeout_s=2)
    warned = [s.symptom for s in report.steps if s.status is Status.WARN]
    assert warned == [Symptom.DAG_STALE, Symptom.DAG_IMPORT_ERRORS] and report.exit_code == 0
    assert "import errors" in report.render()


def test_a_probe_that_creates_a_run_is_a_failure() -> None:
    """Never seen on a real Airflow; if a future version accepted the probe, the check must say so loudly."""
    with FakeServer(airflow_like(probe=Answer(200, {"dag_run_id": "x", "state": "queued"}))) as fake:
        report = run_check(env(fake.url), timeout_s=2)
    step = report.steps[-1]
    assert (step.status, step.symptom) == (Status.FAIL, Symptom.PROBE_CREATED_RUN)


def test_config_error_is_the_first_and_only_step() -> None:
    report = run_check({"AIRFLOW_URI": "ftp://airflow", "DAG_ID": "d"})
    (step,) = report.steps
    assert (step.name, step.status, step.symptom) == ("configuration", Status.FAIL, Symptom.CONFIG_INVALID)
    assert "AIRFLOW_URI" in step.detail and report.exit_code == 1


def test_cli_json_output_and_exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeServer(airflow_like(paused=True)) as fake:
        for key, value in env(fake.url).items():
            monkeypatch.setenv(key, value)
        code = cli.main(["check", "--json", "--timeout", "2"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True
    paused = next(s for s in out["steps"] if s["symptom"] == "dag-paused")
    assert paused["status"] == "warn" and "airflow dags unpause example_dag" in paused["fix"]


# --------------------------------------------------------------------------- google identity (real google-auth)


@pytest.fixture
def metadata() -> Iterator[FakeMetadataServer]:
    with FakeMetadataServer() as server:
        yield server


def check_subprocess(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """google-auth reads GCE_METADATA_HOST at import: run the check in its own process."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GCE_METADATA", "GOOGLE_"))}
    (tmp_path / "gcloud").mkdir(exist_ok=True)
    environ = {**clean, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **extra}
    return subprocess.run(
        [sys.executable, "-m", "dagtrigger", "check", "--timeout", "3"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_google_identity_names_the_service_account_and_never_prints_the_token(
    tmp_path: Path, metadata: FakeMetadataServer
) -> None:
    with FakeServer(airflow_like()) as fake:
        result = check_subprocess(tmp_path, {**env(fake.url, AIRFLOW_AUTH="google"), **metadata.env()})
        sent = {s.headers.get("Authorization") for s in fake.seen}
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"✓ identity: service account {metadata.email}" in result.stdout
    # One token for the identity step, one for the function's own auth hook, which carried every call.
    assert metadata.token_fetches == 2 and sent == {f"Bearer {metadata.token(2)}"}
    for n in (1, 2):
        assert metadata.token(n) not in result.stdout + result.stderr


def test_a_service_account_email_over_64_characters_is_a_warning_with_the_registration_fix(
    tmp_path: Path,
) -> None:
    email = "dagtrigger-events-to-airflow-prod@a-rather-long-project-id-4711.iam.gserviceaccount.com"
    assert len(email) > 64
    with FakeMetadataServer(email=email) as metadata, FakeServer(airflow_like()) as fake:
        result = check_subprocess(tmp_path, {**env(fake.url, AIRFLOW_AUTH="google"), **metadata.env()})
    assert result.returncode == 0, result.stdout + result.stderr  # a warning, not a failure
    assert f"⚠ identity: service account {email}" in result.stdout
    assert "deploy/register-airflow-user.sh --service-account " + email in result.stdout


def test_no_google_credentials_is_a_failure_with_the_fix(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: no metadata server, no ADC file
    no_metadata = {
        "GCE_METADATA_HOST": f"127.0.0.1:{port}",
        "GCE_METADATA_IP": f"127.0.0.1:{port}",
        "GCE_METADATA_TIMEOUT": "1",
        "GCE_METADATA_DETECT_RETRIES": "1",
    }
    result = check_subprocess(tmp_path, {**env("http://127.0.0.1:9", AIRFLOW_AUTH="google"), **no_metadata})
    assert result.returncode == 1
    assert "✗ identity: no Google access token" in result.stdout
    assert "gcloud auth application-default login --impersonate-service-account" in result.stdout


def test_id_token_identity_names_the_account_and_the_audience(tmp_path: Path, metadata: FakeMetadataServer) -> None:
    with FakeServer(airflow_like()) as fake:
        extra = {**env(fake.url, AIRFLOW_AUTH="id-token", AIRFLOW_AUDIENCE="123-iap.apps.googleusercontent.com")}
        result = check_subprocess(tmp_path, {**extra, **metadata.env()})
        sent = {s.headers.get("Authorization", "") for s in fake.seen}
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"✓ identity: service account {metadata.email} (an ID token for audience 123-iap" in result.stdout
    (header,) = sent
    assert header.startswith("Bearer ") and header.split(" ", 1)[1] not in result.stdout + result.stderr


# --------------------------------------------------------------------------- the printed report: advice intact


def _printed(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], handler: Any, **extra: str) -> str:
    with FakeServer(handler) as fake:
        for key, value in env(fake.url, **extra).items():
            monkeypatch.setenv(key, value)
        cli.main(["check", "--timeout", "2"])
    return capsys.readouterr().out


def test_fix_texts_are_printed_unmangled_while_the_password_stays_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Redaction masks secrets, not advice: 'wrong user or password: check AIRFLOW_USERNAME' and the user name in
    'airflow users add-role -u viewer' came out as '***' (the prose matched a password pattern; the user name equals
    its local password)."""
    problem = Answer(403, AIRFLOW2_FORBIDDEN, headers={"Content-Type": "application/problem+json"})

    def denied(seen: Seen) -> Answer:
        if seen.method == "POST":
            return problem
        return airflow_like("v1")(seen)

    creds = {
        "AIRFLOW_AUTH": "basic",
        "AIRFLOW_USERNAME": "viewer",
        "AIRFLOW_PASSWORD": "viewer",
        "AIRFLOW_API_VERSION": "v1",
    }
    out = _printed(monkeypatch, capsys, denied, **creds)
    assert "airflow users add-role -u viewer -r Op" in out, out

    rejected = _printed(
        monkeypatch, capsys, lambda seen: Answer(403, "", headers={"Content-Type": "application/problem+json"}), **creds
    )
    assert "wrong user or password: check AIRFLOW_USERNAME ('viewer')" in rejected, rejected

    secret = "s3cret-password-value"
    leaked = {**creds, "AIRFLOW_PASSWORD": secret}
    echo = Answer(
        403, {"detail": f"bad password: {secret}", "password": secret}, headers={"Content-Type": "application/json"}
    )
    out = _printed(monkeypatch, capsys, lambda seen: echo, **leaked)
    assert secret not in out
