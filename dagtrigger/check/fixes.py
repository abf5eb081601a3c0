"""What ``check`` tells the user: the symptoms it can name and, per symptom and auth mode, the fix (written once).

A fix text may mention ``Facts`` (the identity, the URI, the DAG …), never a secret.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

from ..redaction import redact


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
    OBJECT_UNREADABLE = "object-unreadable"
    OBJECT_MISSING = "object-missing"
    OBJECT_DEAD_LETTERED = "object-dead-lettered"
    AIRFLOW_OVERLOAD = "airflow-overload"
    DEAD_LETTERS_UNSEALED = "dead-letters-unsealed"


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
    "give Airflow user {user!r} the Op role, or the narrow role deploy/airflow-role.sh creates (can_edit and "
    "can_read on the DAG, can_read and can_create on its runs; 'DAG Runs: create' alone is refused) "
    "(Airflow 2 / FAB: `airflow users add-role -u {user} -r Op`; Airflow 3 simple auth manager: "
    "[core] simple_auth_manager_users = {user}:op)"
)
_OP_ANY = (
    "give the Airflow user behind it the Op role, or the role deploy/airflow-role.sh creates (can_edit on the DAG and "
    "can_read, can_create on its runs) (with "
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
        "--dag-id, --routes-file) or in your shell to check locally; see docs/configuration.md",
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
    Symptom.AIRFLOW_OVERLOAD: {
        "*": "lower the deployment's --max-instances or AIRFLOW_MAX_IN_FLIGHT (deploy/ --max-in-flight) until their "
        "product is at most AIRFLOW_CAPACITY, or raise Airflow's [database] sql_alchemy_pool_size / "
        "sql_alchemy_max_overflow (Composer: Airflow configuration overrides) and set AIRFLOW_CAPACITY (deploy/ "
        "--airflow-capacity) to what its API server takes: past its pool Airflow 3's API server stalls "
        "(docs/deploy.md#airflow-capacity)",
    },
    Symptom.DEAD_LETTERS_UNSEALED: {
        "*": "create a key once (openssl rand -base64 32 | gcloud secrets create dead-letter-seal --data-file=-), "
        "grant the function's service account access (deploy/iam.sh --secret dead-letter-seal) and deploy with "
        "--secret DEAD_LETTER_SEAL_SECRET=dead-letter-seal:1 (Terraform: dead_letter_seal_secret); replay with the "
        "same key in the environment. Until then anyone who can write the dead-letter bucket can plant records, and "
        "replay refuses Pub/Sub-message records unless --accept-unsealed (docs/dead-letters.md#seals)",
    },
    Symptom.TRIGGER_IN_FUTURE: {
        "*": "set [scheduler] allow_trigger_in_future = False (the default; Composer: Airflow configuration "
        "overrides) so that batch runs wait for their window to close, or move to Airflow 3 (run_after)",
    },
    Symptom.OBJECT_UNREADABLE: {
        "*": "check the gs:// address; the identity running check needs storage.objects.get on the bucket "
        "(roles/storage.objectViewer) and, for the dead letters, on DEAD_LETTER_URI",
    },
    Symptom.OBJECT_MISSING: {
        "*": "the upload has no run, member or dead letter: `python -m dagtrigger sweep --since 26h` sends what is "
        "missing (docs/accounting.md); `python -m dagtrigger why gs://…` explains one object",
    },
    Symptom.OBJECT_DEAD_LETTERED: {
        "*": "the upload failed for good and was recorded: fix the cause, then `python -m dagtrigger replay "
        "$DEAD_LETTER_URI` (docs/dead-letters.md)",
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
    # What came from outside (a redirect's location, the URI) is redacted here, with patterns; the advice around it
    # is printed as written (see redaction.redact).
    values = {
        name: redact(value, public=(facts.user,)) if isinstance(value, str) and name != "user" else value
        for name, value in asdict(facts).items()
    }
    return (table.get(facts.auth) or table["*"]).format(**values)


def with_facts(facts: Facts, **changes: Any) -> Facts:
    """``facts`` with those of ``changes`` that are Facts fields (others, e.g. step-only keys, are ignored)."""
    names = {f.name for f in fields(Facts)}
    return replace(facts, **{k: v for k, v in changes.items() if k in names})
