"""``python -m dagtrigger check``: is this configuration able to trigger its DAGs, and if not, what is the fix?

It reads the same environment as the function and walks the path an event takes — configuration, identity, network,
API version, authentication, then each DAG the configuration can trigger — reporting ✓/⚠/✗ per step. Every ✗
names the fix (a role to grant, a user to register, a setting to change), looked up in ``FIXES`` by symptom.

Permission to trigger is tested without creating a run: ``PROBE_BODY`` is a trigger request that Airflow refuses
only *after* its permission check (measured on Airflow 2.11.2 and 3.3.2): Op gets 400 (v1) or 422 (v2), Viewer
gets 403. Tokens are never printed.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from urllib3.exceptions import NameResolutionError

from .airflow import AirflowClient
from .airflow import short_message as airflow_message
from .auth import CLOUD_PLATFORM_SCOPE, Auth, make_auth
from .exceptions import AirflowUnreachable, ConfigError, CredentialsUnavailable
from .rules import Rules, load_rules, single_route
from .settings import Settings, settings_from_env

USER_AGENT = "dagtrigger-check"
# Sent instead of a real trigger. Each field alone makes Airflow refuse it after the permission check:
# Airflow 2 (marshmallow, inside the view): unknown field, null logical_date; Airflow 3 (pydantic, after the auth
# dependency): extra field forbidden; both: a run id outside ^[A-Za-z0-9_.~:+-]+$. No run is ever created.
PROBE_MARKER = "dagtrigger_check"
PROBE_BODY: dict[str, Any] = {
    "dag_run_id": "dagtrigger check: permission probe, never created",
    "logical_date": None,
    PROBE_MARKER: "this request is refused on purpose",
}
SA_EMAIL_LIMIT = 64  # Composer cannot auto-register longer service account emails as Airflow users
_LOGIN = re.compile(r"(?i)login|signin|accounts\.google\.com|oauth|/auth/")


class Status(Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


MARKS = {Status.OK: "✓", Status.WARN: "⚠", Status.FAIL: "✗"}


class Symptom(Enum):
    """What the user sees; the key of ``FIXES``."""

    CONFIG_INVALID = "config-invalid"
    NO_CREDENTIALS = "no-credentials"
    USER_CREDENTIALS = "user-credentials"
    LONG_SA_EMAIL = "long-service-account-email"
    CONNECTION_REFUSED = "connection-refused"
    CONNECTION_FAILED = "connection-failed"
    DNS_FAILURE = "dns-failure"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls-error"
    IP_FILTER = "ip-filter-403-html"
    PROXY_401 = "proxy-401-html"
    LOGIN_REDIRECT = "login-redirect"
    REDIRECT = "redirect"
    NO_API = "no-airflow-api"
    CREDENTIALS_REJECTED = "credentials-rejected"
    NO_DAG_READ = "no-dag-read-permission"
    DAG_NOT_FOUND = "dag-not-found"
    DAG_PAUSED = "dag-paused"
    DAG_STALE = "dag-stale"
    DAG_IMPORT_ERRORS = "dag-import-errors"
    NO_TRIGGER_PERMISSION = "no-trigger-permission"
    PROBE_INCONCLUSIVE = "probe-inconclusive"
    PROBE_CREATED_RUN = "probe-created-run"
    UNEXPECTED = "unexpected-answer"
    TRIGGER_IN_FUTURE = "allow-trigger-in-future"


_COMPOSER_ROLE = (
    "grant {identity} roles/composer.user on the environment's project "
    "(gcloud projects add-iam-policy-binding PROJECT --member=serviceAccount:{email} --role=roles/composer.user, "
    "or deploy/iam.sh)"
)
_REGISTER = (
    "a service account whose email is over 64 characters must be registered before its first call as Airflow user "
    "accounts.google.com:NUMERIC_USER_ID (deploy/register-airflow-user.sh --service-account {email}; the id is "
    "`gcloud iam service-accounts describe {email} --format='value(oauth2ClientId)'`)"
)
_OP_GOOGLE = (
    "give the Airflow user of {identity} the Op role (deploy/register-airflow-user.sh --service-account {email} "
    "--add-role --role Op, i.e. `gcloud composer environments run ENV --location LOC users add-role -- "
    "-u accounts.google.com:NUMERIC_USER_ID -r Op` on Airflow 2), and keep [api] "
    "composer_auth_user_registration_role = Op so new API users get it"
)
_OP_USER = (
    "give Airflow user {user!r} the Op role, or User, or a role with 'DAG Runs: create' on this DAG "
    "(Airflow 2 / FAB: `airflow users add-role -u {user} -r Op`; Airflow 3 simple auth manager: "
    "[core] simple_auth_manager_users = {user}:op)"
)
_OP_ANY = (
    "give the Airflow user behind it the Op role, or User, or a role with 'DAG Runs: create' on this DAG (with "
    "AIRFLOW_AUTH=none: the role of anonymous users, AUTH_ROLE_PUBLIC on Airflow 2)"
)
_DENY_ALL = (
    "on Airflow 2 also check that the REST API is enabled: with [api] auth_backends = "
    "airflow.api.auth.backend.deny_all every call but /version answers 403 (Composer 2: `gcloud composer "
    "environments update ENV --location LOC --update-airflow-configs="
    "api-auth_backends=airflow.composer.api.backend.composer_auth`)"
)
_NETWORK = (
    "check AIRFLOW_URI ({uri}); a private IP Composer environment is reachable only from its VPC: deploy the function "
    "with VPC egress (deploy/network.sh, then --vpc-connector); running check from your machine, you need a route "
    "into that VPC too"
)

# symptom → fix text, by AIRFLOW_AUTH mode ("*" for any other). Placeholders come from ``Facts``.
FIXES: dict[Symptom, dict[str, str]] = {
    Symptom.CONFIG_INVALID: {
        "*": "set the variable as the message shows, in the function's environment (deploy scripts: --env, "
        "--dag-id, --routes-file) or in your shell to check locally; see 'Configuration reference' in README.md",
    },
    Symptom.NO_CREDENTIALS: {
        "google": "locally: `gcloud auth application-default login --impersonate-service-account=SA_EMAIL` (to act "
        "as the function's service account); on Cloud Run: check the function's service account exists and is "
        "enabled",
        "id-token": "google-auth mints ID tokens only for service accounts: set GOOGLE_APPLICATION_CREDENTIALS to a "
        "service account key or to an impersonated-service-account credentials file; on Cloud Run: check the "
        "function's service account",
        "*": "check the credentials settings of AIRFLOW_AUTH={auth}",
    },
    Symptom.USER_CREDENTIALS: {
        "*": "these are your own user credentials, not the function's service account: Airflow will see you. To check "
        "as the function, run `gcloud auth application-default login --impersonate-service-account=SA_EMAIL` first",
    },
    Symptom.LONG_SA_EMAIL: {"*": _REGISTER},
    Symptom.CONNECTION_REFUSED: {
        "*": "nothing listens at {uri}: check the host, port and http/https of AIRFLOW_URI (Composer: `gcloud "
        "composer environments describe ENV --location LOC --format='value(config.airflowUri)'`) and that the web "
        "server is running",
    },
    Symptom.CONNECTION_FAILED: {"*": "the connection broke before Airflow answered: " + _NETWORK},
    Symptom.DNS_FAILURE: {"*": "the host name of AIRFLOW_URI does not resolve: " + _NETWORK},
    Symptom.TIMEOUT: {
        "*": "no answer within {timeout:g} s: " + _NETWORK + "; a web server IP allowlist can also drop packets "
        "(deploy/network.sh); if Airflow is only slow, raise AIRFLOW_TIMEOUT_SECONDS",
    },
    Symptom.TLS_ERROR: {"*": "the TLS handshake failed: check https vs http and the certificate of AIRFLOW_URI"},
    Symptom.IP_FILTER: {
        "*": "a 403 HTML page, not Airflow's JSON: the web server's network access control blocks this caller's IP. "
        "Either allow all IP addresses (`gcloud composer environments update ENV --location LOC "
        "--web-server-allow-all`), or give the function a static egress IP and add it to the allowlist "
        "(deploy/network.sh; --update-web-server-allow-ip replaces the whole list). Running check from your "
        "machine, your own IP must be allowed as well",
    },
    Symptom.PROXY_401: {
        "*": "a 401 HTML page, not Airflow's JSON: a proxy in front of Airflow (for example IAP) wants another "
        "credential: for IAP set AIRFLOW_AUTH=id-token and AIRFLOW_AUDIENCE=<the IAP OAuth client id>",
    },
    Symptom.LOGIN_REDIRECT: {
        "*": "Airflow (or a proxy) redirects to a login page ({location}): the REST API is not served at AIRFLOW_URI "
        "as configured, or the credentials are not the ones it expects. Use the web server URL exactly as Composer "
        "prints it (config.airflowUri); behind IAP use AIRFLOW_AUTH=id-token with AIRFLOW_AUDIENCE=<OAuth client id>",
    },
    Symptom.REDIRECT: {"*": "AIRFLOW_URI redirects to {location}: set AIRFLOW_URI to that address instead"},
    Symptom.NO_API: {
        "*": "AIRFLOW_URI must be the Airflow web server URL (not the UI's /home page or another service), and "
        "AIRFLOW_API_VERSION must match the server: auto, v1 (Airflow 2) or v2 (Airflow 3)",
    },
    Symptom.CREDENTIALS_REJECTED: {
        "google": "Airflow refused {identity}: " + _COMPOSER_ROLE + "; " + _REGISTER + "; " + _DENY_ALL,
        "id-token": "the proxy or Airflow refused the ID token of {identity}: AIRFLOW_AUDIENCE must be the audience it "
        "expects (IAP: the OAuth client id) and the account needs access (IAP: roles/iap.httpsResourceAccessor)",
        "basic": "Airflow 2 answers 403 to a wrong user or password: check AIRFLOW_USERNAME ({user!r}) and "
        "AIRFLOW_PASSWORD (from Secret Manager), and that [api] auth_backends includes "
        "airflow.api.auth.backend.basic_auth; " + _DENY_ALL,
        "airflow-jwt": "check AIRFLOW_USERNAME ({user!r}) and AIRFLOW_PASSWORD (from Secret Manager): Airflow's "
        "/auth/token refused them, or the token was not accepted",
        "bearer": "AIRFLOW_TOKEN was refused: it is wrong or expired; issue a new one and update its secret",
        "none": "this Airflow requires authentication: set AIRFLOW_AUTH (google for Cloud Composer)",
        "*": "Airflow refused the credentials",
    },
    Symptom.NO_DAG_READ: {
        "google": "{identity} may not read DAG {dag_id!r}: " + _OP_GOOGLE + "; or add its role to the DAG's "
        "access_control",
        "basic": "{identity} may not read DAG {dag_id!r}: "
        + _OP_USER
        + "; or add its role to the DAG's access_control",
        "airflow-jwt": "{identity} may not read DAG {dag_id!r}: " + _OP_USER,
        "*": "{identity} may not read DAG {dag_id!r}: " + _OP_ANY + "; or add its role to the DAG's access_control",
    },
    Symptom.DAG_NOT_FOUND: {
        "*": "Airflow does not know DAG {dag_id!r}, or has not parsed it yet: check the id (case matters) in DAG_ID / "
        "ROUTES_FILE, that its file is in the DAGs folder (Composer: gs://BUCKET/dags, `gcloud composer environments "
        "storage dags list --environment ENV --location LOC`) and that it imports without errors (Airflow UI → "
        "Import errors, `airflow dags list-import-errors`)",
    },
    Symptom.DAG_PAUSED: {
        "*": "a paused DAG accepts runs that stay queued and never start: unpause it with the toggle in the Airflow "
        "UI, or `airflow dags unpause {dag_id}` (Composer, Airflow 2: `gcloud composer environments run ENV --location "
        "LOC dags unpause -- {dag_id}`). New DAGs start paused unless is_paused_upon_creation=False",
    },
    Symptom.DAG_STALE: {
        "*": "Airflow no longer sees DAG {dag_id!r} in its DAGs folder (inactive/stale): runs are accepted but may "
        "not start; restore or fix its file",
    },
    Symptom.DAG_IMPORT_ERRORS: {
        "*": "the file of DAG {dag_id!r} has import errors: runs use the last version that parsed; fix it "
        "(Airflow UI → Import errors, `airflow dags list-import-errors`)",
    },
    Symptom.NO_TRIGGER_PERMISSION: {
        "google": "{identity} may read but not trigger {dag_id!r} (an Airflow Viewer): " + _OP_GOOGLE,
        "basic": "{identity} may read but not trigger {dag_id!r} (an Airflow Viewer): " + _OP_USER,
        "airflow-jwt": "{identity} may read but not trigger {dag_id!r} (an Airflow Viewer): " + _OP_USER,
        "*": "{identity} may read but not trigger {dag_id!r} (an Airflow Viewer): " + _OP_ANY,
    },
    Symptom.PROBE_INCONCLUSIVE: {
        "*": "could not tell whether {identity} may trigger {dag_id!r}; trigger it once by hand (`python -m "
        "dagtrigger send …`) and read the function's log",
    },
    Symptom.PROBE_CREATED_RUN: {
        "*": "Airflow accepted a request it should have refused and created a run of {dag_id!r}; delete that run in "
        "the Airflow UI and report this Airflow version to dagtrigger",
    },
    Symptom.UNEXPECTED: {"*": "see Airflow's answer above; the web server log has the details"},
    Symptom.TRIGGER_IN_FUTURE: {
        "*": "set [scheduler] allow_trigger_in_future = False (the default; Composer: Airflow configuration "
        "overrides) so that batch runs wait for their window to close, or move to Airflow 3 (run_after)",
    },
}


@dataclass(frozen=True)
class Facts:
    """What fix texts may mention; never a secret."""

    auth: str = "google"
    uri: str = ""
    identity: str = "the caller"
    email: str = "SA_EMAIL"
    user: str = ""
    dag_id: str = ""
    location: str = ""
    timeout: float = 10.0


def fix_for(symptom: Symptom, facts: Facts) -> str:
    """The fix text for a symptom under this auth mode, with the facts filled in."""
    table = FIXES[symptom]
    return (table.get(facts.auth) or table["*"]).format(**asdict(facts))


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str
    fix: str = ""
    symptom: Symptom | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "fix": self.fix,
            "symptom": self.symptom.value if self.symptom else None,
        }

    def render(self) -> str:
        line = f"{MARKS[self.status]} {self.name}: {self.detail}"
        return f"{line}\n    fix: {self.fix}" if self.fix else line


@dataclass(frozen=True)
class Report:
    steps: tuple[Step, ...]
    airflow_uri: str = ""

    @property
    def ok(self) -> bool:
        """No ✗ (warnings allowed)."""
        return all(s.status is not Status.FAIL for s in self.steps)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        fails = sum(s.status is Status.FAIL for s in self.steps)
        warns = sum(s.status is Status.WARN for s in self.steps)
        if fails:
            return f"✗ {fails} problem(s), {warns} warning(s): the function cannot trigger every DAG yet"
        if warns:
            return f"⚠ ready, with {warns} warning(s)"
        return "✓ ready: the function can trigger every DAG it is configured for"

    def render(self) -> str:
        return "\n".join([*(s.render() for s in self.steps), self.summary()])

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "airflow_uri": self.airflow_uri, "steps": [s.as_json() for s in self.steps]}


# --------------------------------------------------------------------------- classification (pure)


def classify_exception(exc: BaseException) -> Symptom:
    """A network failure as the user would name it: refused, DNS, timeout, TLS, or a broken connection."""
    if isinstance(exc, requests.Timeout):
        return Symptom.TIMEOUT
    if isinstance(exc, requests.exceptions.SSLError):
        return Symptom.TLS_ERROR
    for cause in _chain(exc):
        if isinstance(cause, (NameResolutionError, socket.gaierror)):
            return Symptom.DNS_FAILURE
        if isinstance(cause, ConnectionRefusedError):
            return Symptom.CONNECTION_REFUSED
        if isinstance(cause, (TimeoutError, socket.timeout)):
            return Symptom.TIMEOUT
    return Symptom.CONNECTION_FAILED


def _chain(exc: BaseException) -> Iterable[BaseException]:
    """The exception, what it wraps (args, urllib3's ``reason``), its causes; bounded, cycle-safe."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 32:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for linked in (getattr(current, "reason", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                todo.append(linked)


def classify_denial(status: int, content_type: str, location: str = "") -> Symptom | None:
    """Redirects and 401/403; HTML (not Airflow's JSON) means something in front of Airflow answered."""
    if 300 <= status < 400:
        return Symptom.LOGIN_REDIRECT if _LOGIN.search(location) else Symptom.REDIRECT
    if status in (401, 403):
        if "json" not in content_type.lower():
            return Symptom.IP_FILTER if status == 403 else Symptom.PROXY_401
        return Symptom.CREDENTIALS_REJECTED
    return None


def classify_probe(status: int, content_type: str, text: str, location: str = "") -> Symptom | None:
    """The answer to ``PROBE_BODY``: None means Airflow checked the permission and then refused the body."""
    denial = classify_denial(status, content_type, location)
    if denial is Symptom.CREDENTIALS_REJECTED:
        return Symptom.NO_TRIGGER_PERMISSION
    if denial is not None:
        return denial
    if status in (400, 422):
        return None if PROBE_MARKER in text else Symptom.PROBE_INCONCLUSIVE
    if 200 <= status < 300:
        return Symptom.PROBE_CREATED_RUN
    if status == 404:
        return Symptom.DAG_NOT_FOUND
    return Symptom.PROBE_INCONCLUSIVE


def dag_state_symptoms(dag: Mapping[str, Any]) -> list[Symptom]:
    """Warnings from GET dags/{id}: paused; inactive (v1 ``is_active``) or stale (v2 ``is_stale``); import errors."""
    found = []
    if dag.get("is_paused") is True:
        found.append(Symptom.DAG_PAUSED)
    if dag.get("is_active") is False or dag.get("is_stale") is True:
        found.append(Symptom.DAG_STALE)
    if dag.get("has_import_errors") is True:
        found.append(Symptom.DAG_IMPORT_ERRORS)
    return found


def dags_to_check(rules: Rules) -> tuple[str, ...]:
    """Every DAG the configuration can trigger: each route's dag_id and its webhook allow_dags, in order."""
    ordered: dict[str, None] = {}
    for route in rules.routes:
        for dag_id in ((route.dag_id,) if route.dag_id else ()) + route.allow_dags:
            ordered.setdefault(dag_id, None)
    return tuple(ordered)


# --------------------------------------------------------------------------- network plumbing


class BoundedSession(requests.Session):
    """A session whose every request has a timeout no longer than ``limit_s`` — google-auth asks for 120 s."""

    def __init__(self, limit_s: float) -> None:
        super().__init__()
        self.limit_s = limit_s
        self.headers["User-Agent"] = USER_AGENT

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        wanted = kwargs.get("timeout")
        if isinstance(wanted, tuple):
            kwargs["timeout"] = tuple(min(t or self.limit_s, self.limit_s) for t in wanted)
        else:
            kwargs["timeout"] = min(wanted or self.limit_s, self.limit_s)
        return super().request(*args, **kwargs)


def _content_type(response: requests.Response) -> str:
    return response.headers.get("Content-Type", "")


def _answer(response: requests.Response) -> str:
    return f"{response.status_code} {airflow_message(response) or '(empty)'}"


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        value = response.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --------------------------------------------------------------------------- the check


class _Check:
    """Runs the steps in order; a ✗ that makes later steps meaningless stops the walk."""

    def __init__(self, env: Mapping[str, str], timeout_s: float) -> None:
        self.env = env
        self.timeout_s = timeout_s
        self.steps: list[Step] = []
        self.facts = Facts(timeout=timeout_s)
        self.session = BoundedSession(timeout_s)

    def add(self, name: str, status: Status, detail: str, symptom: Symptom | None = None, **facts: Any) -> Step:
        fix = fix_for(symptom, _replace(self.facts, **facts)) if symptom and status is not Status.OK else ""
        step = Step(name, status, detail, fix, symptom)
        self.steps.append(step)
        return step

    def fail(self, name: str, detail: str, symptom: Symptom, **facts: Any) -> None:
        self.add(name, Status.FAIL, detail, symptom, **facts)

    def run(self) -> Report:
        settings, rules = self.configuration()
        if settings is None or rules is None:
            return Report(tuple(self.steps))
        auth = make_auth(settings, lambda: BoundedSession(self.timeout_s))
        if self.identity(settings, auth) and self.reachable(settings, auth):
            client = self.version(settings, auth)
            if client is not None and self.authenticated(client):
                for dag_id in dags_to_check(rules):
                    self.dag(client, dag_id)
                if any(r.batch is not None for r in rules.routes):
                    self.batch_start(client)
        return Report(tuple(self.steps), settings.airflow_uri)

    # 1
    def configuration(self) -> tuple[Settings | None, Rules | None]:
        try:
            settings = settings_from_env(self.env)
            if settings.routes_file:
                rules, source = load_rules(settings.routes_file), f"ROUTES_FILE={settings.routes_file}"
            else:
                assert settings.dag_id is not None
                rules, source = single_route(settings.dag_id, settings.storage_actions), f"DAG_ID={settings.dag_id}"
        except ConfigError as exc:
            self.fail("configuration", str(exc), Symptom.CONFIG_INVALID)
            return None, None
        self.facts = _replace(self.facts, auth=settings.auth, uri=settings.airflow_uri, user=settings.username)
        dags = ", ".join(dags_to_check(rules)) or "(none)"
        detail = (
            f"AIRFLOW_URI={settings.airflow_uri}, AIRFLOW_AUTH={settings.auth}, "
            f"AIRFLOW_API_VERSION={settings.api_version}, {source} → DAGs: {dags}"
        )
        self.add("configuration", Status.OK, detail)
        return settings, rules

    # 2
    def identity(self, settings: Settings, auth: Auth) -> bool:
        name = "identity"
        if settings.auth in ("google", "id-token"):
            return self._google_identity(settings)
        who = {
            "none": "anonymous (AIRFLOW_AUTH=none: nothing is sent)",
            "basic": f"Airflow user {settings.username!r} (HTTP basic; the password is tried at 'authentication')",
            "airflow-jwt": f"Airflow user {settings.username!r} (a JWT from {settings.airflow_uri}/auth/token, "
            "fetched at 'authentication')",
            "bearer": "the static token in AIRFLOW_TOKEN (not shown)",
        }[settings.auth]
        self.facts = _replace(self.facts, identity=auth.identity())
        self.add(name, Status.OK, who)
        return True

    def _google_identity(self, settings: Settings) -> bool:
        """Refresh the credentials the function would use and name the account; the token is never shown."""
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
        import google.oauth2.id_token

        name = "identity"
        request = google.auth.transport.requests.Request(session=BoundedSession(self.timeout_s))
        try:
            if settings.auth == "id-token":
                credentials: Any = google.oauth2.id_token.fetch_id_token_credentials(  # type: ignore[no-untyped-call]
                    settings.audience, request=request
                )
            else:
                credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            credentials.refresh(request)
        except google.auth.exceptions.GoogleAuthError as exc:
            detail = f"no Google {'ID' if settings.auth == 'id-token' else 'access'} token: {_first_line(exc)}"
            self.fail(name, detail, Symptom.NO_CREDENTIALS)
            return False
        email = _account_email(credentials, request)
        token_kind = f"ID token for audience {settings.audience}" if settings.auth == "id-token" else "access token"
        if not email:
            who = "your user account" if _is_user_credentials(credentials) else "an unnamed Google identity"
            self.facts = _replace(self.facts, identity=who)
            detail = f"{who} (an {token_kind} was obtained, not shown)"
            self.add(name, Status.WARN, detail, Symptom.USER_CREDENTIALS)
            return True
        kind = "user" if _is_user_credentials(credentials) else "service account"
        self.facts = _replace(self.facts, identity=f"{kind} {email}", email=email)
        detail = f"{kind} {email} (an {token_kind} was obtained, not shown)"
        if kind == "user":
            self.add(name, Status.WARN, detail, Symptom.USER_CREDENTIALS)
        elif len(email) > SA_EMAIL_LIMIT and settings.auth == "google":
            detail += f"; its email is {len(email)} characters, over {SA_EMAIL_LIMIT}"
            self.add(name, Status.WARN, detail, Symptom.LONG_SA_EMAIL)
        else:
            self.add(name, Status.OK, detail)
        return True

    # 3
    def reachable(self, settings: Settings, auth: Auth) -> bool:
        """One GET of the v2 version endpoint: any HTTP answer from Airflow counts; what stops it is named."""
        name = "reachable"
        url = f"{settings.airflow_uri}/api/v2/version"
        # The JWT comes from Airflow itself: ask without it (the version endpoints are public on both majors).
        hook = None if settings.auth == "airflow-jwt" else auth
        began = time.monotonic()
        try:
            response = self.session.get(url, auth=hook, timeout=self._timeout(), allow_redirects=False)
        except CredentialsUnavailable as exc:
            self.fail(name, str(exc), Symptom.NO_CREDENTIALS)
            return False
        except requests.RequestException as exc:
            symptom = classify_exception(exc)
            host = urlsplit(settings.airflow_uri).netloc
            self.fail(name, f"{host}: {symptom.value} ({type(exc).__name__})", symptom)
            return False
        elapsed = time.monotonic() - began
        location = response.headers.get("Location", "")
        denial = classify_denial(response.status_code, _content_type(response), location)
        if denial is not None and denial is not Symptom.CREDENTIALS_REJECTED:
            detail = f"GET {url} answered {_answer(response)}" + (f" → {location}" if location else "")
            self.fail(name, detail, denial, location=location)
            return False
        detail = f"{settings.airflow_uri} answered in {elapsed:.2f} s (GET /api/v2/version → {response.status_code})"
        self.add(name, Status.OK, detail)
        return True

    # 4
    def version(self, settings: Settings, auth: Auth) -> AirflowClient | None:
        name = "API version"
        probe_auth = Auth() if settings.auth == "airflow-jwt" else auth
        probe = self._client(settings, probe_auth, settings.api_version)
        try:
            version = probe.api_version()
            answer = probe.get("version")
        except (AirflowUnreachable, CredentialsUnavailable) as exc:
            self.fail(name, str(exc), Symptom.NO_API)
            return None
        if answer.status_code == 404:  # only when configured: auto-detection needs 200, 401 or 403
            detail = f"AIRFLOW_API_VERSION={version}, but GET /api/{version}/version answered 404"
            self.fail(name, detail, Symptom.NO_API)
            return None
        number = _json(answer).get("version") if answer.status_code == 200 else None
        major = {"v1": "Airflow 2", "v2": "Airflow 3"}[version]
        how = "detected" if settings.api_version == "auto" else "AIRFLOW_API_VERSION"
        shown = f"Airflow {number}" if number else f"{major}; GET /version answered {answer.status_code}"
        self.add(name, Status.OK, f"{version} ({shown}; {how})")
        return self._client(settings, auth, version)

    # 5
    def authenticated(self, client: AirflowClient) -> bool:
        """A read that every Airflow role may make: GET dags?limit=1."""
        name = "authentication"
        try:
            response = client.get("dags?limit=1")
        except CredentialsUnavailable as exc:
            self.fail(name, str(exc), Symptom.CREDENTIALS_REJECTED)
            return False
        except AirflowUnreachable as exc:
            self.fail(name, str(exc), Symptom.CONNECTION_FAILED)
            return False
        location = response.headers.get("Location", "")
        denial = classify_denial(response.status_code, _content_type(response), location)
        if denial is not None:
            detail = f"GET dags answered {_answer(response)} for {self.facts.identity}"
            self.fail(name, detail, denial, location=location)
            return False
        if response.status_code != 200:
            self.fail(name, f"GET dags answered {_answer(response)}", Symptom.UNEXPECTED)
            return False
        self.add(name, Status.OK, f"Airflow accepts {self.facts.identity}")
        return True

    # 6
    def dag(self, client: AirflowClient, dag_id: str) -> None:
        facts = {"dag_id": dag_id}
        try:
            response = client.get(f"dags/{quote(dag_id, safe='')}")
        except (AirflowUnreachable, CredentialsUnavailable) as exc:
            self.fail(f"DAG {dag_id!r}", str(exc), Symptom.CONNECTION_FAILED, **facts)
            return
        name = f"DAG {dag_id!r} exists"
        if response.status_code == 404:
            self.fail(name, "not found, or not parsed yet (404)", Symptom.DAG_NOT_FOUND, **facts)
            return
        if response.status_code in (401, 403):
            self.fail(name, f"GET dags/{dag_id} answered {_answer(response)}", Symptom.NO_DAG_READ, **facts)
            return
        if response.status_code != 200:
            self.fail(name, f"GET dags/{dag_id} answered {_answer(response)}", Symptom.UNEXPECTED, **facts)
            return
        dag = _json(response)
        self.add(name, Status.OK, _describe_dag(dag))
        states = dag_state_symptoms(dag)
        paused = Symptom.DAG_PAUSED in states
        self.add(
            f"DAG {dag_id!r} is unpaused",
            Status.WARN if paused else Status.OK,
            "no, it is PAUSED: runs will be created but stay queued" if paused else "yes",
            Symptom.DAG_PAUSED if paused else None,
            **facts,
        )
        for symptom in states:
            if symptom in _HEALTH:
                self.add(f"DAG {dag_id!r} is healthy", Status.WARN, _HEALTH[symptom], symptom, **facts)
        self.may_trigger(client, dag_id)

    def may_trigger(self, client: AirflowClient, dag_id: str) -> None:
        name = f"may trigger {dag_id!r}"
        url = client.dag_runs_url(dag_id)
        try:
            response = client.session.post(
                url, json=PROBE_BODY, auth=client.auth, timeout=client.timeout, allow_redirects=False
            )
        except (requests.RequestException, CredentialsUnavailable) as exc:
            self.fail(name, f"{type(exc).__name__}", Symptom.CONNECTION_FAILED, dag_id=dag_id)
            return
        location = response.headers.get("Location", "")
        symptom = classify_probe(response.status_code, _content_type(response), response.text, location)
        if symptom is None:
            detail = (
                f"yes: Airflow checked the permission, then refused the deliberately invalid probe "
                f"({response.status_code}); no run was created"
            )
            self.add(name, Status.OK, detail)
            return
        status = Status.WARN if symptom is Symptom.PROBE_INCONCLUSIVE else Status.FAIL
        detail = f"POST dagRuns (probe) answered {_answer(response)}"
        self.add(name, status, detail, symptom, dag_id=dag_id, location=location)

    # 7 (batched routes only)
    def batch_start(self, client: AirflowClient) -> None:
        """Airflow 2 starts a future-dated run at once when allow_trigger_in_future is True: batches would not wait.

        Readable only where the web server exposes its configuration ([webserver] expose_config)."""
        name = "batch runs wait for their window"
        if client.api_version() != "v1":
            self.add(name, Status.OK, "yes: Airflow 3 starts a run only once its run_after (the window end) has passed")
            return
        url = f"{client.base_url}/api/v1/config/section/scheduler/option/allow_trigger_in_future"
        try:
            response = client.session.get(
                url, auth=client.auth, timeout=client.timeout, headers={"Accept": "application/json"}
            )
            options = _json(response).get("sections", [{}])[0].get("options", [])
            value = str(next((o.get("value") for o in options if o.get("key") == "allow_trigger_in_future"), ""))
        except (requests.RequestException, CredentialsUnavailable, AttributeError, IndexError, TypeError):
            value = ""
        if value.lower() == "true":
            detail = "no: [scheduler] allow_trigger_in_future is True, so batch runs start before their window closes"
            self.add(name, Status.WARN, detail, Symptom.TRIGGER_IN_FUTURE)
        elif value.lower() == "false":
            self.add(name, Status.OK, "yes: [scheduler] allow_trigger_in_future is False")
        else:
            detail = "probably: the configuration is not readable here (expose_config); the default False is right"
            self.add(name, Status.OK, detail)

    def _client(self, settings: Settings, auth: Auth, version: str) -> AirflowClient:
        """The function's own client, but on a session without retries: a check reports, it does not persist."""
        return AirflowClient(
            settings.airflow_uri,
            auth,
            api_version=version,
            timeout_s=self.timeout_s,
            session=self.session,
            retry_budget_s=self.timeout_s,
            max_in_flight=1,
        )

    def _timeout(self) -> tuple[float, float]:
        return (min(5.0, self.timeout_s), self.timeout_s)


_HEALTH = {
    Symptom.DAG_STALE: "Airflow marks it inactive/stale: its file is gone from the DAGs folder",
    Symptom.DAG_IMPORT_ERRORS: "its file has import errors",
}


def _replace(facts: Facts, **changes: Any) -> Facts:
    return replace(facts, **{k: v for k, v in changes.items() if k in Facts.__dataclass_fields__})


def _describe_dag(dag: Mapping[str, Any]) -> str:
    parts = ["found"]
    for key in ("is_paused", "is_active", "is_stale", "has_import_errors"):
        if key in dag:
            parts.append(f"{key}={str(dag[key]).lower()}")
    return ", ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _is_user_credentials(credentials: Any) -> bool:
    return type(credentials).__module__ == "google.oauth2.credentials"


def _account_email(credentials: Any, request: Any) -> str | None:
    """The account behind the credentials: their own attribute, the ID token's claim, or the metadata server."""
    for attribute in ("service_account_email", "signer_email", "account"):
        value = getattr(credentials, attribute, None)
        if isinstance(value, str) and "@" in value:
            return value
    claims = _jwt_claims(getattr(credentials, "token", None))
    if isinstance(claims.get("email"), str):
        return str(claims["email"])
    if type(credentials).__module__.startswith("google.auth.compute_engine"):
        try:
            from google.auth.compute_engine import _metadata

            info = _metadata.get_service_account_info(request)  # type: ignore[no-untyped-call]
            return str(info["email"]) if isinstance(info, dict) and info.get("email") else None
        except Exception:
            return None
    return None


def _jwt_claims(token: Any) -> dict[str, Any]:
    """Claims of a JWT, read without verifying (to name the account); opaque access tokens give {}."""
    import base64

    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    try:
        payload = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def run_check(env: Mapping[str, str], timeout_s: float = 10.0) -> Report:
    """Run every step against the configuration in ``env``; network calls are bounded by ``timeout_s`` each."""
    return _Check(env, timeout_s).run()


def main(env: Mapping[str, str], as_json: bool, timeout_s: float) -> int:
    """Print the report (text or JSON) and return the exit code: 0 when no ✗ (warnings allowed), else 1."""
    report = run_check(env, timeout_s)
    if as_json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        if report.airflow_uri:
            print(f"dagtrigger check — {report.airflow_uri}")
        print(report.render())
    return report.exit_code
