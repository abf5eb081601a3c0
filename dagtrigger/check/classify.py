"""Pure classification of what Airflow (or the network in front of it) answered, as the symptom a user would name.

The permission probe: ``PROBE_BODY`` is a trigger request that Airflow refuses only *after* its permission check
(measured on Airflow 2.11.2 and 3.3.2): Op gets 400 (v1) or 422 (v2), Viewer gets 403. No run is ever created.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from urllib3.exceptions import NameResolutionError

from ..rules import Rules
from .fixes import Symptom

# Sent instead of a real trigger. Each field alone makes Airflow refuse it after the permission check:
# Airflow 2 (marshmallow, inside the view): unknown field, null logical_date; Airflow 3 (pydantic, after the auth
# dependency): extra field forbidden; both: a run id outside ^[A-Za-z0-9_.~:+-]+$. No run is ever created.
PROBE_MARKER = "dagtrigger_check"
PROBE_BODY: dict[str, Any] = {
    "dag_run_id": "dagtrigger check: permission probe, never created",
    "logical_date": None,
    PROBE_MARKER: "this request is refused on purpose",
}
_LOGIN = re.compile(r"(?i)login|signin|accounts\.google\.com|oauth|/auth/")


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
