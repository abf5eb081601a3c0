"""A batch-window DAG (docs/batch-windows.md): list the run's members prefix, dedupe by key, process each once.

dagtrigger records one JSON object per event under ``conf["batch"]["members"]`` before it acknowledges the event,
and starts this run only after the window closed. A key may appear again only as ``late: true`` in a later batch
(recorded after an earlier run had started): dedupe by key, and make processing idempotent per key.

The task returns what it read (XCom ``return_value``), which the integration tests compare with what they sent.
It reads with google-cloud-storage where installed (Composer), else with the Cloud Storage JSON API of the local
emulator (``STORAGE_EMULATOR_HOST``), so the local Airflow venvs need no extra package.
"""

# mypy: ignore-errors
# (airflow is not installed in the function's venv, where mypy runs)

from __future__ import annotations

import datetime
import json
import os
import urllib.parse
import urllib.request

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def _member_documents(members_uri: str) -> list[dict]:
    """Every member record under gs://bucket/prefix/ (the prefix is unique to this run)."""
    bucket, _, prefix = members_uri.removeprefix("gs://").partition("/")
    try:
        from google.cloud import storage
    except ImportError:
        storage = None
    if storage is not None:
        client = storage.Client()
        return [json.loads(b.download_as_bytes()) for b in client.list_blobs(bucket, prefix=prefix)]
    host = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")  # local demo only
    query = urllib.parse.urlencode({"prefix": prefix})
    with urllib.request.urlopen(f"{host}/storage/v1/b/{bucket}/o?{query}", timeout=30) as answer:
        items = json.load(answer).get("items", [])
    documents = []
    for item in items:
        name = urllib.parse.quote(item["name"], safe="")
        with urllib.request.urlopen(f"{host}/storage/v1/b/{bucket}/o/{name}?alt=media", timeout=30) as answer:
            documents.append(json.load(answer))
    return documents


def read_members(**context):
    batch = context["dag_run"].conf["batch"]
    members = {}
    for doc in sorted(_member_documents(batch["members"]), key=lambda d: (d["key"], d["late"])):
        members.setdefault(doc["key"], doc)  # one per key; an on-time copy wins over a late one
    for key, doc in sorted(members.items()):
        print(f"member {key} late={doc['late']} object={doc['conf'].get('name')}")  # process it here, idempotently
    return {
        "group": batch["group"],
        "window_end": batch["window_end"],
        "keys": sorted(members),
        "names": sorted(d["conf"].get("name") or "" for d in members.values()),
        "late": sorted(k for k, d in members.items() if d["late"]),
        "read_at": datetime.datetime.now(datetime.UTC).isoformat(),
    }


with DAG(
    dag_id="dagtrigger_batch",
    schedule=None,
    start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=64,
    tags=["dagtrigger"],
) as batch_dag:
    PythonOperator(task_id="read_members", python_callable=read_members)
