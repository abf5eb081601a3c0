"""A batch-window DAG (docs/batch-windows.md): list the run's members prefix, keep the sealed ones, dedupe by key,
process each once.

dagtrigger records one JSON object per event under ``conf["batch"]["members"]`` before it acknowledges the event,
and starts this run only after the window closed. A key may appear again only as ``late: true`` in a later batch
(recorded after an earlier run had started): dedupe by key, and make processing idempotent per key.

Anyone who can write the members bucket can add an object there. With the Airflow Variable
``dagtrigger_member_seal_secret`` set to the function's ``DEAD_LETTER_SEAL_SECRET`` (and its previous keys,
comma-separated, while a rotation is under way), only members whose seal verifies are read; the others are logged and
listed as ``refused``. Without it every member is read, as the log says.

The task returns what it read (XCom ``return_value``), which the integration tests compare with what they sent.
It reads with google-cloud-storage where installed (Composer), else with the Cloud Storage JSON API of the local
emulator (``STORAGE_EMULATOR_HOST``), so the local Airflow venvs need no extra package.
"""

# mypy: ignore-errors
# (airflow is not installed in the function's venv, where mypy runs)

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import urllib.parse
import urllib.request

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG, Variable
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.models import Variable
    from airflow.operators.python import PythonOperator

SEAL_KEY_VARIABLE = "dagtrigger_member_seal_secret"
DOMAIN = b"dagtrigger batch member seal v1\n"


def member_verifies(doc: dict, bucket: str, name: str, key_b64: str) -> bool:
    """True when ``doc``, read from gs://bucket/name, carries a seal made with this key (DEAD_LETTER_SEAL_SECRET)."""
    key = base64.b64decode(key_b64.strip(), validate=True)
    parts = str(doc.get("seal", "")).split(".")
    key_id = hmac.new(key, b"dagtrigger dead-letter seal key id", hashlib.sha256).hexdigest()[:8]
    if len(parts) != 3 or parts[0] != "v1" or not hmac.compare_digest(parts[1], key_id):
        return False
    fields = {k: v for k, v in doc.items() if k != "seal"}
    body = {"object": f"gs://{bucket}/{name}", "member": fields}
    try:
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or Infinity, which json.loads accepts: never in a member the function wrote
        return False
    expected = hmac.new(key, DOMAIN + canonical.encode("ascii"), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts[2])


def _member_objects(members_uri: str) -> list[tuple[str, bytes]]:
    """(name, content) of every object under gs://bucket/prefix/ (the prefix is unique to this run)."""
    bucket, _, prefix = members_uri.removeprefix("gs://").partition("/")
    try:
        from google.cloud import storage
    except ImportError:
        storage = None
    if storage is not None:
        client = storage.Client()
        return [(b.name, b.download_as_bytes()) for b in client.list_blobs(bucket, prefix=prefix)]
    host = os.environ["STORAGE_EMULATOR_HOST"].rstrip("/")  # local demo only
    query = urllib.parse.urlencode({"prefix": prefix})
    with urllib.request.urlopen(f"{host}/storage/v1/b/{bucket}/o?{query}", timeout=30) as answer:
        items = json.load(answer).get("items", [])
    objects = []
    for item in items:
        name = urllib.parse.quote(item["name"], safe="")
        with urllib.request.urlopen(f"{host}/storage/v1/b/{bucket}/o/{name}?alt=media", timeout=30) as answer:
            objects.append((item["name"], answer.read()))
    return objects


def _seal_keys() -> list[str]:
    value = Variable.get(SEAL_KEY_VARIABLE, None)
    return [key.strip() for key in str(value or "").split(",") if key.strip()]


def _accepted(bucket: str, name: str, data: bytes, keys: list[str]) -> dict | None:
    """The member record, or None (logged) when it is not one the function wrote."""
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or not isinstance(doc.get("conf"), dict):
        print(f"WARNING: skipped gs://{bucket}/{name}: not a member record")
        return None
    if keys and not any(member_verifies(doc, bucket, name, key) for key in keys):
        print(f"WARNING: skipped gs://{bucket}/{name}: its seal does not verify (planted, altered or copied)")
        return None
    return doc


def read_members(**context):
    batch = context["dag_run"].conf["batch"]
    bucket = batch["members"].removeprefix("gs://").partition("/")[0]
    keys = _seal_keys()
    if not keys:
        print(f"members are not verified: set the Airflow Variable {SEAL_KEY_VARIABLE} (docs/batch-windows.md)")
    accepted, refused = [], []
    for name, data in _member_objects(batch["members"]):
        doc = _accepted(bucket, name, data, keys)
        if doc is None:
            refused.append(name)
        else:
            accepted.append(doc)
    members = {}
    for doc in sorted(accepted, key=lambda d: (d["key"], bool(d.get("late")))):
        members.setdefault(doc["key"], doc)  # one per key; an on-time copy wins over a late one
    for key, doc in sorted(members.items()):
        late, name = doc.get("late", False), doc["conf"].get("name")
        print(f"member {key} late={late} object={name}")  # process it here, idempotently
    return {
        "group": batch["group"],
        "window_end": batch["window_end"],
        "keys": sorted(members),
        "names": sorted(d["conf"].get("name") or "" for d in members.values()),
        "late": sorted(k for k, d in members.items() if d.get("late")),
        "verified": bool(keys),
        "refused": sorted(refused),
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
