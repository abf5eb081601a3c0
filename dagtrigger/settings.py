"""Configuration read once from the environment, validated, frozen.

A bad value fails at start-up (import of ``main``) with the variable's name and an example of a good value, so a
misconfigured deployment never starts instead of failing on every event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from . import storage_events
from .exceptions import ConfigError
from .gcs import parse_setting
from .redaction import Secret, basic_credentials

__all__ = ["Secret", "Settings", "settings_from_env"]

API_VERSIONS = ("auto", "v1", "v2")
AUTH_MODES = ("google", "none", "basic", "airflow-jwt", "id-token", "bearer")

WEBHOOK_AUTH_MODES = ("signature", "cloud-run-iam")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
REMOVED = {
    "ALLOW_UNSIGNED_PUSH": "Pub/Sub push now goes to the trigger_push entry point, which verifies the push "
    "subscription's OIDC token (PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNTS); see docs/security.md",
}

# How long a request's head (line and headers) may take to arrive once its first byte has, and its body once the head
# has: totals, not per read, so a sender that stalls or trickles a byte at a time cannot hold a worker thread.
HEAD_READ_TIMEOUT_S = 10.0
BODY_READ_TIMEOUT_S = 10.0

# Airflow's own rule for DAG ids (KEY_REGEX, ASCII subset) and its length limit; always used with fullmatch.
DAG_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")


def is_dag_id(value: object) -> bool:
    """Airflow's DAG-id alphabet, matched in full; '.' and '..' are path segments, never DAG ids."""
    return isinstance(value, str) and DAG_ID_PATTERN.fullmatch(value) is not None and value.strip(".") != ""


# Airflow's default database pool per API server process: [database] sql_alchemy_pool_size 5 + max_overflow 10.
AIRFLOW_DEFAULT_CAPACITY = 15


@dataclass(frozen=True)
class Settings:
    """The configuration, read from the environment once and validated."""

    airflow_uri: str
    dag_id: str | None
    api_version: str = "auto"
    auth: str = "google"
    username: str = ""
    password: Secret = field(default_factory=Secret)
    token: Secret = field(default_factory=Secret)
    audience: str = ""
    timeout_s: float = 20.0
    retry_budget_s: float = 30.0
    max_conf_bytes: int = 64 * 1024
    max_body_bytes: int = 1024 * 1024
    storage_actions: frozenset[str] = field(default_factory=lambda: frozenset(storage_events.DEFAULT_ACTIONS))
    log_level: str = "INFO"
    routes_file: str | None = None
    webhook_secrets: tuple[Secret, ...] = ()  # the current secret first, then the one being rotated out
    webhook_auth: str = "signature"
    webhook_tolerance_s: float = 300.0
    push_audience: str = ""
    push_service_accounts: frozenset[str] = frozenset()
    push_certs_url: str = GOOGLE_CERTS_URL
    dead_letter_uri: str | None = None
    # DEAD_LETTER_SEAL_SECRET, then DEAD_LETTER_SEAL_SECRET_PREVIOUS's keys: the first seals, all verify (seal.py).
    dead_letter_seal_secrets: tuple[Secret, ...] = ()
    max_event_age_s: float = 86400.0
    max_in_flight: int = 8
    # The deployment's --max-instances (set by deploy/) and the concurrent calls the target Airflow API server takes:
    # `check` warns when max_instances × max_in_flight is over airflow_capacity (Airflow 3 stalls past its DB pool).
    max_instances: int | None = None
    airflow_capacity: int = AIRFLOW_DEFAULT_CAPACITY

    def secrets(self) -> tuple[str, ...]:
        """Values the log formatter masks wherever they appear."""
        basic = basic_credentials(self.username, self.password) if self.username and self.password else ""
        seal_keys = self.dead_letter_seal_secrets
        return tuple(s for s in (self.password, self.token, *self.webhook_secrets, *seal_keys, basic) if s)


# The entry points main.py defines (Cloud Run's --entry-point, functions-framework's --target / FUNCTION_TARGET).
ENTRY_POINTS = ("trigger_event", "trigger_http", "trigger_push")
DEFAULT_ENTRY_POINT = "trigger_event"

_EXAMPLES = {
    "AIRFLOW_URI": "https://abc123-dot-us-central1.composer.googleusercontent.com",
    "DAG_ID": "ingest_landing_files",
    "AIRFLOW_API_VERSION": "auto",
    "AIRFLOW_AUTH": "google",
    "AIRFLOW_TIMEOUT_SECONDS": "20",
    "AIRFLOW_RETRY_BUDGET_SECONDS": "30",
    "MAX_CONF_BYTES": "65536",
    "MAX_BODY_BYTES": "1048576",
    "STORAGE_EVENT_TYPES": "finalized,metadataUpdated",
    "LOG_LEVEL": "INFO",
    "ROUTES_FILE": "routes.yaml",
    "WEBHOOK_TOLERANCE_SECONDS": "300",
    "DEAD_LETTER_URI": "gs://my-project-dagtrigger/dead-letters",
    "MAX_EVENT_AGE_SECONDS": "86400",
    "AIRFLOW_MAX_IN_FLIGHT": "8",
    "MAX_INSTANCES": "3",
    "AIRFLOW_CAPACITY": "15",
    "WEBHOOK_AUTH": "signature",
    "PUSH_AUDIENCE": "https://dagtrigger-abc123-uc.a.run.app",
    "PUSH_SERVICE_ACCOUNTS": "pubsub-push@my-project.iam.gserviceaccount.com",
}


def _bad(name: str, problem: str) -> ConfigError:
    example = _EXAMPLES.get(name, "")
    hint = f" (example: {name}={example})" if example else ""
    return ConfigError(f"{name}: {problem}{hint}")


def normalize_airflow_uri(raw: str) -> str:
    """Accept what users paste: trailing slashes and the UI's ``/home`` suffix go; credentials in the URL do not."""
    name = "AIRFLOW_URI"
    value = raw.strip()
    if not value:
        raise _bad(name, "is required: the Airflow web server URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad(name, "must be an http(s) URL with a host")
    if parts.username or parts.password:
        raise _bad(name, "must not carry credentials; use AIRFLOW_AUTH=basic with AIRFLOW_USERNAME/AIRFLOW_PASSWORD")
    if parts.query or parts.fragment:
        raise _bad(name, "must not have a query string or fragment")
    path = parts.path.rstrip("/")
    for suffix in ("/home", "/api/v1", "/api/v2"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def validate_dag_id(dag_id: str, where: str = "DAG_ID") -> str:
    if not is_dag_id(dag_id):
        raise _bad(where, f"{dag_id!r} is not a valid DAG id (letters, digits, '_', '.', '-'; at most 250)")
    return dag_id


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _bad(name, f"{raw!r} is not a number") from None
    if not low <= value <= high:
        raise _bad(name, f"{raw} is outside {low:g}..{high:g}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip() or default
    if value not in choices:
        raise _bad(name, f"{value!r} is not one of {', '.join(choices)}")
    return value


def _storage_actions(env: Mapping[str, str]) -> frozenset[str]:
    raw = env.get("STORAGE_EVENT_TYPES", "").strip() or ",".join(storage_events.DEFAULT_ACTIONS)
    actions = frozenset(a.strip() for a in raw.split(",") if a.strip())
    unknown = sorted(actions - set(storage_events.ACTIONS))
    if unknown or not actions:
        raise _bad("STORAGE_EVENT_TYPES", f"unknown {unknown}; choose from {', '.join(storage_events.ACTIONS)}")
    return actions


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Parse and validate every setting; raise ConfigError naming the first bad variable."""
    auth = _choice(env, "AIRFLOW_AUTH", AUTH_MODES, "google")
    username = env.get("AIRFLOW_USERNAME", "")
    password = Secret(env.get("AIRFLOW_PASSWORD", ""))
    token = Secret(env.get("AIRFLOW_TOKEN", ""))
    if auth in ("basic", "airflow-jwt") and not (username and password):
        raise ConfigError(
            f"AIRFLOW_AUTH={auth} needs AIRFLOW_USERNAME and AIRFLOW_PASSWORD "
            "(map the password from Secret Manager: --set-secrets=AIRFLOW_PASSWORD=airflow-password:latest)"
        )
    if auth == "bearer" and not token:
        raise ConfigError("AIRFLOW_AUTH=bearer needs AIRFLOW_TOKEN (--set-secrets=AIRFLOW_TOKEN=airflow-token:latest)")
    airflow_uri = normalize_airflow_uri(env.get("AIRFLOW_URI", ""))
    dag_id = env.get("DAG_ID", "").strip() or None
    routes_file = env.get("ROUTES_FILE", "").strip() or None
    if not dag_id and not routes_file:
        raise _bad("DAG_ID", "is required (the DAG to trigger), or set ROUTES_FILE to a routing file")
    if dag_id and routes_file:
        raise ConfigError("set either DAG_ID (one route) or ROUTES_FILE (routing rules), not both")
    for name, why in REMOVED.items():
        if env.get(name, "").strip():
            raise ConfigError(f"{name} was removed: {why}")
    webhook_secrets = tuple(
        webhook_secret(env, name) for name in ("WEBHOOK_HMAC_SECRET", "WEBHOOK_HMAC_SECRET_PREVIOUS") if env.get(name)
    )
    if env.get("WEBHOOK_HMAC_SECRET_PREVIOUS") and not env.get("WEBHOOK_HMAC_SECRET"):
        raise ConfigError("WEBHOOK_HMAC_SECRET_PREVIOUS is set without WEBHOOK_HMAC_SECRET (the current secret)")
    push_audience = env.get("PUSH_AUDIENCE", "").strip()
    push_accounts = frozenset(a.strip() for a in env.get("PUSH_SERVICE_ACCOUNTS", "").split(",") if a.strip())
    if env.get("FUNCTION_TARGET") == "trigger_push" and not (push_audience and push_accounts):
        raise _bad(
            "PUSH_AUDIENCE" if not push_audience else "PUSH_SERVICE_ACCOUNTS",
            "is required for trigger_push: the push subscription's OIDC audience and the service account(s) it signs "
            "as (gcloud pubsub subscriptions create … --push-auth-service-account=… --push-auth-token-audience=…)",
        )
    level = env.get("LOG_LEVEL", "").strip().upper() or "INFO"
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise _bad("LOG_LEVEL", f"{level!r} is not DEBUG, INFO, WARNING or ERROR")
    return Settings(
        airflow_uri=airflow_uri,
        dag_id=validate_dag_id(dag_id) if dag_id else None,
        api_version=_choice(env, "AIRFLOW_API_VERSION", API_VERSIONS, "auto"),
        auth=auth,
        username=username,
        password=password,
        token=token,
        audience=env.get("AIRFLOW_AUDIENCE", "").strip() or airflow_uri,
        timeout_s=_number(env, "AIRFLOW_TIMEOUT_SECONDS", 20.0, 0.1, 600.0),
        retry_budget_s=_number(env, "AIRFLOW_RETRY_BUDGET_SECONDS", 30.0, 0.0, 3600.0),
        max_conf_bytes=int(_number(env, "MAX_CONF_BYTES", 64 * 1024, 2, 16 * 1024 * 1024)),
        max_body_bytes=int(_number(env, "MAX_BODY_BYTES", 1024 * 1024, 2, 32 * 1024 * 1024)),
        storage_actions=_storage_actions(env),
        log_level=level,
        routes_file=routes_file,
        webhook_secrets=webhook_secrets,
        webhook_auth=_choice(env, "WEBHOOK_AUTH", WEBHOOK_AUTH_MODES, "signature"),
        webhook_tolerance_s=_number(env, "WEBHOOK_TOLERANCE_SECONDS", 300.0, 1.0, 86400.0),
        push_audience=push_audience,
        push_service_accounts=push_accounts,
        push_certs_url=env.get("PUSH_CERTS_URL", "").strip() or GOOGLE_CERTS_URL,
        dead_letter_uri=_gs_uri(env),
        dead_letter_seal_secrets=_seal_secrets(env),
        max_event_age_s=_number(env, "MAX_EVENT_AGE_SECONDS", 86400.0, 60.0, 30 * 86400.0),
        max_in_flight=int(_number(env, "AIRFLOW_MAX_IN_FLIGHT", 8, 1, 1000)),
        max_instances=int(_number(env, "MAX_INSTANCES", 0, 1, 1000)) if env.get("MAX_INSTANCES", "").strip() else None,
        airflow_capacity=int(_number(env, "AIRFLOW_CAPACITY", AIRFLOW_DEFAULT_CAPACITY, 1, 100_000)),
    )


def _gs_uri(env: Mapping[str, str]) -> str | None:
    raw = env.get("DEAD_LETTER_URI", "").strip()
    if not raw:
        return None
    parse_setting("DEAD_LETTER_URI", raw, _EXAMPLES["DEAD_LETTER_URI"])  # the store's own rule, checked now
    return raw


def _seal_secrets(env: Mapping[str, str]) -> tuple[Secret, ...]:
    """The dead-letter seal keys, current first, each checked (base64, ≥ 16 bytes) by the module that uses them."""
    current, previous = env.get("DEAD_LETTER_SEAL_SECRET", ""), env.get("DEAD_LETTER_SEAL_SECRET_PREVIOUS", "")
    if not current.strip() and not previous.replace(",", "").strip():
        return ()  # nothing to check: the dead-letter package is not imported at start-up (cold start)
    from .deadletter.seal import SealKeys  # here: deadletter imports events, which imports this module

    SealKeys.parse(current, previous)
    texts = [current.strip()] if current.strip() else []
    texts += [part.strip() for part in previous.split(",") if part.strip()]
    return tuple(Secret(text) for text in texts)


def webhook_secret(env: Mapping[str, str], name: str) -> Secret:
    """A webhook signing secret from the environment (mapped from Secret Manager), at least 16 characters."""
    value = Secret(env.get(name, ""))
    if len(value) < 16:
        raise ConfigError(
            f"{name}: must be set and at least 16 characters (generate one: openssl rand -hex 32; map it from "
            f"Secret Manager: --set-secrets={name}=my-webhook-secret:latest)"
        )
    return value
