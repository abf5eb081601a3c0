"""Issue 16, finding 4 (and issue 19 item 6): ``replay`` re-derives what it sends from the routes of today.

The dead-letter bucket is writable by more than the function (its own service account, operators, anyone granted
objectUser on it). A record used to choose its DAG, run id and route: a planted record started a run on a DAG no
route names with an attacker's conf; ANSI escapes in a reason reached the terminal raw in ``--dry-run``; one object
of 5,000 nested ``[`` aborted every replay with a traceback. Now a record can only re-send what a route would send
today for the event it holds: the DAG and the run id come from the route, a webhook record must carry a signature
that verifies with the route's secret, a record that fails any of this is refused and reported, and replay goes on.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dagtrigger import events
from dagtrigger.deadletter import DeadLetterStore, new_record
from dagtrigger.send import webhook_request
from devtools.localfunction import REPO
from tests.support.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import storage_attrs, storage_data

from .harness import SECRET

pytestmark = pytest.mark.integration
BUCKET = "dead-letters"
ROUTES = {
    "routes": [
        {"name": "landing", "dag_id": "landing_files", "match": {"kind": "storage", "bucket": "landing"}},
        {"name": "shop", "dag_id": "shop_orders", "match": {"kind": "webhook", "path": {"prefix": "/shop"}}},
    ]
}
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket(BUCKET)
        emulator.create_bucket("landing")
        yield emulator


def _uploaded(gcs: StorageEmulator, name: str, bucket: str = "landing") -> dict[str, Any]:
    """Upload ``name`` and return its object resource as Cloud Storage reports it (what Eventarc's data carries)."""
    blob = gcs.client().bucket(bucket).blob(name)
    blob.metadata = {"source": "erp"}
    blob.upload_from_string(b"a,b\n1,2\n", content_type="text/csv")
    blob.reload()
    return dict(blob._properties)


def _replay(
    airflow: FakeAirflow, gcs: StorageEmulator, uri: str, tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    settings = {"AIRFLOW_URI": airflow.url, "AIRFLOW_AUTH": "none", "AIRFLOW_API_VERSION": "v2"}
    settings.update(env or {"ROUTES_FILE": str(routes), "WEBHOOK_HMAC_SECRET": SECRET})
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAG_ID", "ROUTES_FILE", "WEBHOOK"))}
    return subprocess.run(
        [sys.executable, "-m", "dagtrigger", "replay", uri, *args],
        cwd=REPO, env={**clean, **settings, **gcs.env()}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _storage_record(  # type: ignore[no-untyped-def]
    name: str, dag_id: str, route: str, bucket: str = "landing", data: dict[str, Any] | None = None, **over: object
):
    data = data if data is not None else storage_data(bucket=bucket, name=name)
    event = events.from_cloud_event(storage_attrs(bucket=bucket, name=name), data)
    record = new_record(event, dag_id=dag_id, route=route, run_id=f"planted-{name}", reason="x", now=NOW)
    return replace(record, **over)  # type: ignore[arg-type]


def test_planted_records_send_only_what_a_route_sends_today(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    uri = f"gs://{BUCKET}/planted"
    store = DeadLetterStore(uri, client=gcs.client())
    store.write(_storage_record("a.csv", "evil_dag", "landing", data=_uploaded(gcs, "a.csv")))  # a DAG no route names
    store.write(_storage_record("b.csv", "landing_files", "landing", bucket="secret-bucket"))  # no route takes it
    store.write(_storage_record("c.csv", "landing_files", "no-such-route"))
    hook = webhook_request("http://x", {"refund": 1}, "/shop", "not-the-secret-0123456789", "k-1")
    webhook = events.from_webhook(hook.body, dict(hook.headers), "/shop")
    store.write(new_record(webhook, dag_id="shop_orders", route="shop", run_id="w", reason="x", now=NOW))
    gcs.client().bucket(BUCKET).blob(f"planted/{NOW:%Y/%m/%d}/landing_files/deep.json").upload_from_string(
        "[" * 5000 + "]" * 5000
    )
    escape = _storage_record(
        "d.csv", "landing_files", "landing", data=_uploaded(gcs, "d.csv"), reason="\x1b[2J\x1b]0;pwned\x07 rm -rf"
    )
    store.write(escape)

    dry = _replay(airflow, gcs, uri, tmp_path, "--dry-run")
    assert "\x1b" not in dry.stdout + dry.stderr and "\x07" not in dry.stdout + dry.stderr, dry.stdout
    assert "Traceback" not in dry.stderr, dry.stderr

    result = _replay(airflow, gcs, uri, tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1  # some records were refused: the operator must look
    dags = sorted(dag for dag, _ in airflow.runs)
    assert dags == ["landing_files", "landing_files"], (dags, result.stdout, result.stderr)  # a.csv and d.csv
    assert all(body["conf"]["bucket"] == "landing" for body in airflow.runs.values())
    assert {run_id for _, run_id in airflow.runs}.isdisjoint({"planted-a.csv", "planted-d.csv"})
    assert result.stdout.count("refused") == 3 and result.stdout.count("skipped") == 1, result.stdout


def test_a_signed_webhook_record_replays_to_its_route(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    uri = f"gs://{BUCKET}/signed"
    hook = webhook_request("http://x", {"order": 7}, "/shop", SECRET, "order-7")
    webhook = events.from_webhook(hook.body, dict(hook.headers), "/shop")
    record = new_record(webhook, dag_id="shop_orders", route="shop", run_id="w", reason="x", now=NOW)
    DeadLetterStore(uri, client=gcs.client()).write(record)
    tampered = json.loads(base64.b64decode(record.raw["body_base64"]))
    assert tampered == {"order": 7}
    result = _replay(airflow, gcs, uri, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [(dag, run_id)] = list(airflow.runs)
    assert dag == "shop_orders" and "order-7" in run_id


def test_replay_after_correcting_dag_id_posts_to_the_corrected_dag(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    """Issue 19 item 6: a record written while DAG_ID named a missing DAG goes to the DAG_ID of today."""
    uri = f"gs://{BUCKET}/corrected"
    record = _storage_record("e.csv", "typo_dag", "default", data=_uploaded(gcs, "e.csv"))
    DeadLetterStore(uri, client=gcs.client()).write(record)
    result = _replay(airflow, gcs, uri, tmp_path, DAG_ID="right_dag")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [dag for dag, _ in airflow.runs] == ["right_dag"]


def test_a_storage_record_replays_only_for_its_object_as_cloud_storage_has_it(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    """A storage record carries no signature; anyone who can write the dead-letter bucket could plant one for an
    object that never existed, or with metadata (which the conf carries) of their own. Cloud Storage now confirms
    it: the object must exist at the recorded generation with every recorded field unchanged."""
    uri = f"gs://{BUCKET}/objects"
    store = DeadLetterStore(uri, client=gcs.client())
    store.write(_storage_record("never-uploaded.csv", "landing_files", "landing"))
    real = _uploaded(gcs, "real.csv")
    forged = {**real, "metadata": {"source": "attacker"}, "size": "999999"}
    store.write(_storage_record("real.csv", "landing_files", "landing", data=forged))
    gone = _uploaded(gcs, "gone.csv")
    gcs.client().bucket("landing").blob("gone.csv").delete()
    store.write(_storage_record("gone.csv", "landing_files", "landing", data=gone))
    genuine = _uploaded(gcs, "genuine.csv")
    store.write(_storage_record("genuine.csv", "landing_files", "landing", data=genuine))

    result = _replay(airflow, gcs, uri, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.count("refused") == 3, result.stdout
    assert "does not exist" in result.stdout and "metadata, size differ" in result.stdout, result.stdout
    [body] = airflow.runs.values()
    assert body["conf"]["name"] == "genuine.csv" and body["conf"]["metadata"] == {"source": "erp"}, body
