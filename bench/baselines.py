"""Baseline functions, served by functions-framework exactly like ``main.py`` (one target per process).

- ``bare_event``   returns at once: the framework alone, for the cold-start baseline.
- ``floor_event``  forwards a fixed body (only the run id varies) with one pooled ``requests.Session``: the least a
                   CloudEvent → Airflow function can cost.
- ``sample_event`` the widespread sample pattern (Google's "trigger a DAG from Cloud Functions" sample): credentials
                   resolved at import with ``google.auth.default()``, a new ``AuthorizedSession`` for every call.

Each target imports only what it uses, chosen by ``FUNCTION_TARGET`` (functions-framework sets it before it runs
this file), so ``bare_event``'s cold start is not charged for requests or google-auth.
"""

from __future__ import annotations

import os
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent

TARGET = os.environ.get("FUNCTION_TARGET", "")
AIRFLOW_URI = os.environ.get("AIRFLOW_URI", "").rstrip("/")
DAG_ID = os.environ.get("DAG_ID", "dagtrigger_example")
DAG_RUNS_URL = f"{AIRFLOW_URI}/api/v2/dags/{DAG_ID}/dagRuns"
TIMEOUT_S = 90

if TARGET == "floor_event":
    import json

    import requests

    SESSION = requests.Session()
    HEADERS = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {os.environ.get('BENCH_STATIC_TOKEN', 'static-token')}",
    }
    # A fixed conf the size and shape of a storage event's, so that Airflow does the same work as for the others.
    _CONF = {
        "kind": "storage#object",
        "bucket": "bench-landing",
        "name": "incoming/fixed/file.csv",
        "generation": "1732442400123456",
        "metageneration": "1",
        "contentType": "text/csv",
        "size": "1024",
        "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
        "crc32c": "yZRlqg==",
        "etag": "CMDo3b3n0YkDEAE=",
        "storageClass": "STANDARD",
        "timeCreated": "2026-11-24T10:00:00.100Z",
        "updated": "2026-11-24T10:00:00.100Z",
        "metadata": {"source": "erp"},
        "_event": {"id": "fixed", "type": "google.cloud.storage.object.v1.finalized", "source": "fixed"},
    }
    BODY_HEAD = b'{"dag_run_id": "'
    BODY_TAIL = ('", "logical_date": null, "conf": ' + json.dumps(_CONF) + "}").encode()

if TARGET == "sample_event":
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    AUTH_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
    CREDENTIALS, _ = google.auth.default(scopes=[AUTH_SCOPE])


@functions_framework.cloud_event
def bare_event(cloud_event: CloudEvent) -> None:
    return None


@functions_framework.cloud_event
def floor_event(cloud_event: CloudEvent) -> None:
    # A fixed body: only the run id changes, so each event is a new run (200) as it is for the other variants.
    body = BODY_HEAD + str(cloud_event["id"]).encode() + BODY_TAIL
    response = SESSION.post(DAG_RUNS_URL, data=body, headers=HEADERS, timeout=TIMEOUT_S)
    if response.status_code >= 300:
        raise RuntimeError(f"Airflow answered {response.status_code}")


def _make_web_server_request(url: str, method: str = "GET", **kwargs: Any) -> Any:
    """As in the sample: a new AuthorizedSession (its own pool, so a new TCP + TLS connection) on every call."""
    authed_session = AuthorizedSession(CREDENTIALS)  # type: ignore[no-untyped-call]
    kwargs.setdefault("timeout", TIMEOUT_S)
    return authed_session.request(method, url, **kwargs)  # type: ignore[no-untyped-call]


@functions_framework.cloud_event
def sample_event(cloud_event: CloudEvent) -> None:
    # The sample sends {"conf": data}; the run id (and Airflow 3's logical_date) make it do the same work as ours.
    json_data = {"dag_run_id": cloud_event["id"], "conf": cloud_event.data, "logical_date": None}
    response = _make_web_server_request(DAG_RUNS_URL, method="POST", json=json_data)
    if response.status_code == 403:
        raise RuntimeError(f"You do not have permission to perform this operation: {response.text}")
    if response.status_code != 200:
        response.raise_for_status()
