"""The walk: the path an event takes, one named step after another; a ✗ that makes later steps meaningless stops it.

Steps, in order: ``configuration`` → ``identity`` → ``reachable`` → ``api_version`` → ``authentication`` → for each
DAG ``dag`` (exists, unpaused, healthy) and ``may_trigger`` → ``batch_start`` (batched routes only) → ``object``
(with ``--object gs://…``: the ``why`` verdicts of one upload). Calls go
through the function's own ``AirflowClient`` on a ``BoundedSession`` (no retries: a check reports, it does not
persist). Tokens are never printed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from .. import function
from ..airflow import AirflowClient, BoundedSession
from ..airflow import short_message as airflow_message
from ..airflow_auth import Auth, account_email, google_credentials, is_user_credentials, make_auth
from ..clock import SYSTEM_CLOCK
from ..exceptions import AirflowUnreachable, ConfigError, CredentialsUnavailable
from ..redaction import redact
from ..rules import Rules
from ..settings import Settings
from .classify import PROBE_BODY, classify_denial, classify_exception, classify_probe, dag_state_symptoms, dags_to_check
from .fixes import Facts, Symptom, fix_for, with_facts
from .report import CheckReport, Status, Step

USER_AGENT = "dagtrigger-check"
SA_EMAIL_LIMIT = 64  # Composer cannot auto-register longer service account emails as Airflow users


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


class _Check:
    """Runs the steps in order; a ✗ that makes later steps meaningless stops the walk."""

    def __init__(
        self, env: Mapping[str, str], timeout_s: float, object_uri: str | None = None, entry_point: str | None = None
    ) -> None:
        self.env = env
        self.entry_point = entry_point
        self.timeout_s = timeout_s
        self.object_uri = object_uri
        self.steps: list[Step] = []
        self.facts = Facts(timeout=timeout_s)
        self.session = BoundedSession(timeout_s, USER_AGENT)

    def add(self, name: str, status: Status, detail: str, symptom: Symptom | None = None, **facts: Any) -> Step:
        fix = fix_for(symptom, with_facts(self.facts, **facts)) if symptom and status is not Status.OK else ""
        step = Step(name, status, detail, fix, symptom)
        self.steps.append(step)
        return step

    def fail(self, name: str, detail: str, symptom: Symptom, **facts: Any) -> None:
        self.add(name, Status.FAIL, detail, symptom, **facts)

    def run(self) -> CheckReport:
        settings, rules = self.configuration()
        if settings is None or rules is None:
            return CheckReport(tuple(self.steps))
        auth = make_auth(settings, lambda: BoundedSession(self.timeout_s, USER_AGENT))
        if self.identity(settings, auth) and self.reachable(settings, auth):
            client = self.api_version(settings, auth)
            if client is not None and self.authentication(client):
                for dag_id in dags_to_check(rules):
                    self.dag(client, dag_id)
                if any(r.batch is not None for r in rules.routes):
                    self.batch_start(client)
                if self.object_uri:
                    self.sample_object(settings, rules, client)
        return CheckReport(tuple(self.steps), settings.airflow_uri)

    def configuration(self) -> tuple[Settings | None, Rules | None]:
        """The function starts with this configuration: built by ``function.build``, the code main.py runs at
        start-up, for the entry point given (or FUNCTION_TARGET), so ✓ here means the deployment would start."""
        try:
            built = function.build(self.env, self.entry_point, log_stream=sys.stderr)
        except ConfigError as exc:
            self.fail("configuration", str(exc), Symptom.CONFIG_INVALID)
            return None, None
        settings, rules = built.settings, built.rules
        source = f"DAG_ID={settings.dag_id}" if rules.single else f"ROUTES_FILE={settings.routes_file}"
        self.facts = with_facts(self.facts, auth=settings.auth, uri=settings.airflow_uri, user=settings.username)
        dags = ", ".join(dags_to_check(rules)) or "(none)"
        detail = (
            f"{built.entry_point} would start: AIRFLOW_URI={settings.airflow_uri}, AIRFLOW_AUTH={settings.auth}, "
            f"AIRFLOW_API_VERSION={settings.api_version}, {source} → DAGs: {dags}"
        )
        self.add("configuration", Status.OK, detail)
        self.airflow_load(settings)
        self.dead_letter_seal(settings)
        return settings, rules

    def dead_letter_seal(self, settings: Settings) -> None:
        """With DEAD_LETTER_URI, records should be sealed: without a key, a writer of the bucket can plant a Pub/Sub
        message record that nothing else can disprove (deadletter/seal.py)."""
        if not settings.dead_letter_uri:
            return
        name = "dead letters are sealed"
        keys = settings.dead_letter_seal_secrets
        if not keys:
            detail = "no: DEAD_LETTER_URI is set without DEAD_LETTER_SEAL_SECRET, so records are written unsealed"
            self.add(name, Status.WARN, detail, Symptom.DEAD_LETTERS_UNSEALED)
            return
        kept = f", {len(keys) - 1} previous key(s) still verify" if len(keys) > 1 else ""
        self.add(name, Status.OK, f"yes: records are sealed with DEAD_LETTER_SEAL_SECRET{kept}")

    def airflow_load(self, settings: Settings) -> None:
        """Cloud Run multiplies AIRFLOW_MAX_IN_FLIGHT by the number of instances; past its database pool Airflow 3's
        API server stalls (3.1 POST/s at 32 callers against 34-44/s at 16, measured), so the product must fit."""
        name = "Airflow's API server stays under its capacity"
        per = settings.max_in_flight
        capacity = f"AIRFLOW_CAPACITY={settings.airflow_capacity}"
        if settings.max_instances is None:
            detail = (
                f"at most {per} calls per instance (AIRFLOW_MAX_IN_FLIGHT); set MAX_INSTANCES to the deployment's "
                f"--max-instances (deploy/ does) to check the total against {capacity}"
            )
            self.add(name, Status.OK, detail)
            return
        total = settings.max_instances * per
        detail = f"MAX_INSTANCES × AIRFLOW_MAX_IN_FLIGHT = {settings.max_instances} × {per} = {total} calls at once"
        if total > settings.airflow_capacity:
            self.add(name, Status.WARN, f"no: {detail}, over {capacity}", Symptom.AIRFLOW_OVERLOAD)
        else:
            self.add(name, Status.OK, f"yes: {detail}, within {capacity}")

    def identity(self, settings: Settings, auth: Auth) -> bool:
        """Who Airflow will see: the service account, the Airflow user, or anonymous."""
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
        self.facts = with_facts(self.facts, identity=auth.identity())
        self.add(name, Status.OK, who)
        return True

    def _google_identity(self, settings: Settings) -> bool:
        """Refresh the credentials the function would use and name the account; the token is never shown."""
        import google.auth.exceptions
        import google.auth.transport.requests

        name = "identity"
        session = BoundedSession(self.timeout_s, USER_AGENT)
        request = google.auth.transport.requests.Request(session=session)
        try:
            credentials = google_credentials(settings.auth, settings.audience, session)
            credentials.refresh(request)
        except google.auth.exceptions.GoogleAuthError as exc:
            detail = f"no Google {'ID' if settings.auth == 'id-token' else 'access'} token: {_first_line(exc)}"
            self.fail(name, detail, Symptom.NO_CREDENTIALS)
            return False
        email = account_email(credentials, request)
        token_kind = f"ID token for audience {settings.audience}" if settings.auth == "id-token" else "access token"
        if not email:
            who = "your user account" if is_user_credentials(credentials) else "an unnamed Google identity"
            self.facts = with_facts(self.facts, identity=who)
            detail = f"{who} (an {token_kind} was obtained, not shown)"
            self.add(name, Status.WARN, detail, Symptom.USER_CREDENTIALS)
            return True
        kind = "user" if is_user_credentials(credentials) else "service account"
        self.facts = with_facts(self.facts, identity=f"{kind} {email}", email=email)
        detail = f"{kind} {email} (an {token_kind} was obtained, not shown)"
        if kind == "user":
            self.add(name, Status.WARN, detail, Symptom.USER_CREDENTIALS)
        elif len(email) > SA_EMAIL_LIMIT and settings.auth == "google":
            detail += f"; its email is {len(email)} characters, over {SA_EMAIL_LIMIT}"
            self.add(name, Status.WARN, detail, Symptom.LONG_SA_EMAIL)
        else:
            self.add(name, Status.OK, detail)
        return True

    def reachable(self, settings: Settings, auth: Auth) -> bool:
        """One GET of the v2 version endpoint: any HTTP answer from Airflow counts; what stops it is named."""
        name = "reachable"
        url = f"{settings.airflow_uri}/api/v2/version"
        # The JWT comes from Airflow itself: ask without it (the version endpoints are public on both majors).
        hook = None if settings.auth == "airflow-jwt" else auth
        began = SYSTEM_CLOCK.monotonic()
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
        elapsed = SYSTEM_CLOCK.monotonic() - began
        location = response.headers.get("Location", "")
        denial = classify_denial(response.status_code, _content_type(response), location)
        if denial is not None and denial is not Symptom.CREDENTIALS_REJECTED:
            detail = f"GET {url} answered {_answer(response)}" + (f" → {location}" if location else "")
            self.fail(name, detail, denial, location=location)
            return False
        detail = f"{settings.airflow_uri} answered in {elapsed:.2f} s (GET /api/v2/version → {response.status_code})"
        self.add(name, Status.OK, detail)
        return True

    def api_version(self, settings: Settings, auth: Auth) -> AirflowClient | None:
        """v1 or v2, configured or detected, and the Airflow version; gives the client the later steps use."""
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

    def authentication(self, client: AirflowClient) -> bool:
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

    def dag(self, client: AirflowClient, dag_id: str) -> None:
        """One DAG the configuration can trigger: it exists, is unpaused and healthy; then ``may_trigger``."""
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
        try:
            response = client.probe_trigger(dag_id, PROBE_BODY)
        except (AirflowUnreachable, CredentialsUnavailable) as exc:
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

    def batch_start(self, client: AirflowClient) -> None:
        """Airflow 2 starts a future-dated run at once when allow_trigger_in_future is True: batches would not wait.

        Readable only where the web server exposes its configuration ([webserver] expose_config)."""
        name = "batch runs wait for their window"
        if client.api_version() != "v1":
            self.add(name, Status.OK, "yes: Airflow 3 starts a run only once its run_after (the window end) has passed")
            return
        path = "config/section/scheduler/option/allow_trigger_in_future"
        try:
            response = client.get(path, headers={"Accept": "application/json"})
            options = _json(response).get("sections", [{}])[0].get("options", [])
            value = str(next((o.get("value") for o in options if o.get("key") == "allow_trigger_in_future"), ""))
        except (AirflowUnreachable, CredentialsUnavailable, AttributeError, IndexError, TypeError):
            value = ""
        if value.lower() == "true":
            detail = "no: [scheduler] allow_trigger_in_future is True, so batch runs start before their window closes"
            self.add(name, Status.WARN, detail, Symptom.TRIGGER_IN_FUTURE)
        elif value.lower() == "false":
            self.add(name, Status.OK, "yes: [scheduler] allow_trigger_in_future is False")
        else:
            detail = "probably: the configuration is not readable here (expose_config); the default False is right"
            self.add(name, Status.OK, detail)

    def sample_object(self, settings: Settings, rules: Rules, client: AirflowClient) -> None:
        """``--object gs://…``: what ``why`` says of one upload, with the function's routes and stores."""
        from ..accounting.why import why
        from ..deadletter import DeadLetterStore
        from ..gcs import storage_client
        from ..pipeline import Pipeline

        name = f"object {self.object_uri}"
        assert self.object_uri is not None
        try:
            store = DeadLetterStore(settings.dead_letter_uri) if settings.dead_letter_uri else None
            pipeline = Pipeline(settings, client, rules, dead_letters=store)
            answer = why(pipeline, storage_client(), self.object_uri, None)
        except (AirflowUnreachable, CredentialsUnavailable) as exc:
            self.fail(name, str(exc), Symptom.CONNECTION_FAILED)
            return
        except Exception as exc:  # the object, the bucket or the dead letters cannot be read
            self.fail(name, f"{type(exc).__name__}: {redact(str(exc))[:300]}", Symptom.OBJECT_UNREADABLE)
            return
        verdicts = [f"route {r['route']!r}: {r['verdict']}" for r in answer["routes"]]
        detail = f"generation {answer['object']['generation']}: " + "; ".join(verdicts)
        found = {r["verdict"] for r in answer["routes"]}
        if "missing" in found:
            self.add(name, Status.WARN, detail, Symptom.OBJECT_MISSING)
        elif "dead_lettered" in found:
            self.add(name, Status.WARN, detail, Symptom.OBJECT_DEAD_LETTERED)
        else:
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


def _describe_dag(dag: Mapping[str, Any]) -> str:
    parts = ["found"]
    for key in ("is_paused", "is_active", "is_stale", "has_import_errors"):
        if key in dag:
            parts.append(f"{key}={str(dag[key]).lower()}")
    return ", ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def run_check(
    env: Mapping[str, str], timeout_s: float = 10.0, object_uri: str | None = None, entry_point: str | None = None
) -> CheckReport:
    """Run every step against the configuration in ``env``; network calls are bounded by ``timeout_s`` each.
    ``object_uri``: also say what became of this upload (``why``); ``entry_point``: the one to validate the
    configuration for (default FUNCTION_TARGET, else trigger_event)."""
    return _Check(env, timeout_s, object_uri, entry_point).run()


def main(
    env: Mapping[str, str],
    as_json: bool,
    timeout_s: float,
    object_uri: str | None = None,
    entry_point: str | None = None,
) -> int:
    """Print the report (text or JSON) and return the exit code: 0 when no ✗ (warnings allowed), else 1."""
    report = run_check(env, timeout_s, object_uri, entry_point).redacted(user=env.get("AIRFLOW_USERNAME", ""))
    if as_json:
        print(json.dumps(report.as_json(), indent=2, ensure_ascii=False))
    else:
        if report.airflow_uri:
            print(f"dagtrigger check — {report.airflow_uri}")
        print(report.render())
    return report.exit_code
