"""Issue 16, finding 4 (what was left): dead-letter records of Pub/Sub messages carry a seal that replay verifies.

Anyone who can write the dead-letter bucket (the function's own service account, operators, other grants) could plant
a record of a Pub/Sub message: nothing outside the record can confirm a message (Pub/Sub keeps no acknowledged ones),
so replay sent it to the DAG a pubsub route names with the writer's data and attributes as the conf. Now the function
seals every record it writes (HMAC-SHA256 with DEAD_LETTER_SEAL_SECRET, from Secret Manager); replay refuses a record
whose seal is missing or wrong, and without a key it refuses unsealed Pub/Sub-message records unless the operator
passes ``--accept-unsealed``. Replay runs as the operator runs it (``python -m dagtrigger replay``), against the
storage emulator; the genuine record is written by a real ``trigger_event`` process failing against a fake Airflow
whose DAG is missing (a fault injected on purpose).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dagtrigger import events
from dagtrigger.deadletter import DeadLetter, DeadLetterStore, new_record
from dagtrigger.deadletter.seal import SealKeys
from dagtrigger.send import storage_event
from devtools.fake_pubsub import FakePubSub
from devtools.localfunction import REPO, FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import pubsub_attrs, pubsub_data

from .harness import event_env

pytestmark = pytest.mark.integration
BUCKET = "dead-letters"
DAG = "order_events"
ROUTES = {"routes": [{"name": "orders", "dag_id": DAG, "match": {"kind": "pubsub", "topic": "orders"}}]}
KEY = base64.b64encode(b"the function's seal key, 32 byte").decode()
OTHER_KEY = base64.b64encode(b"somebody else's key of 32 bytes!").decode()
NEW_KEY = base64.b64encode(b"the key rotated in, also 32 byte").decode()
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket(BUCKET)
        yield emulator


@pytest.fixture()
def routes(tmp_path: Path) -> Path:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    return path


def _replay(
    airflow: FakeAirflow, gcs: StorageEmulator, uri: str, routes: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    settings = {"AIRFLOW_URI": airflow.url, "AIRFLOW_AUTH": "none", "AIRFLOW_API_VERSION": "v2", **env}
    settings["ROUTES_FILE"] = str(routes)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAG_ID", "ROUTES_FILE", "DEAD_"))}
    return subprocess.run(
        [sys.executable, "-m", "dagtrigger", "replay", uri, *args],
        cwd=REPO, env={**clean, **settings, **gcs.env()}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _message(payload: dict[str, Any], message_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Pub/Sub message on topic ``orders`` as Eventarc delivers it (a CloudEvent)."""
    data = pubsub_data(json.dumps(payload).encode(), message_id=message_id, attributes={"origin": "erp"})
    return pubsub_attrs(topic="orders", message_id=message_id), data


def _planted(payload: dict[str, Any], message_id: str) -> DeadLetter:
    """What a writer of the bucket can make without any key: a well-formed record of a message never published."""
    event = events.from_cloud_event(*_message(payload, message_id))
    return new_record(event, dag_id=DAG, route="orders", run_id=f"planted-{message_id}", reason="x", now=NOW)


def test_without_a_key_a_planted_pubsub_record_is_refused_unless_the_operator_accepts_it(
    airflow: FakeAirflow, gcs: StorageEmulator, routes: Path
) -> None:
    uri = f"gs://{BUCKET}/unkeyed"
    DeadLetterStore(uri, client=gcs.client()).write(_planted({"refund_to": "attacker"}, "planted-1"))

    dry = _replay(airflow, gcs, uri, routes, "--dry-run")
    assert dry.stdout.startswith("would replay") and "[no seal]" in dry.stdout, dry.stdout
    refused = _replay(airflow, gcs, uri, routes)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert airflow.runs == {}, airflow.runs  # before: a run on order_events with {"refund_to": "attacker"}
    assert refused.stdout.startswith("refused") and "--accept-unsealed" in refused.stdout, refused.stdout

    accepted = _replay(airflow, gcs, uri, routes, "--accept-unsealed")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    [body] = airflow.runs.values()
    assert body["conf"]["refund_to"] == "attacker"  # the operator's explicit choice: today's behaviour


def test_with_a_key_only_records_the_function_sealed_are_replayed(
    airflow: FakeAirflow, gcs: StorageEmulator, routes: Path, tmp_path: Path
) -> None:
    uri = f"gs://{BUCKET}/keyed"
    env = {**event_env(airflow.url, routes), "DEAD_LETTER_URI": uri, "DEAD_LETTER_SEAL_SECRET": KEY, **gcs.env()}
    airflow.missing_dags.add(DAG)  # the fault: Airflow answers 404, so the function writes a dead letter
    try:
        with FunctionProcess("trigger_event", env, tmp_path / "fn") as function:
            answer = function.send_event(*_message({"order": 7}, "genuine-1"))
            assert answer.status_code == 200, answer.text
            failed = [e for e in function.logs() if e.get("outcome") == "failed"]
    finally:
        airflow.missing_dags.discard(DAG)
    assert len(failed) == 1 and failed[0]["dead_letter"], failed
    assert airflow.runs == {}
    store = DeadLetterStore(uri, client=gcs.client())
    [(name, genuine)] = list(store.list())
    assert genuine.to_dict()["seal"].startswith("v1."), genuine.to_dict()

    store.write(_planted({"refund_to": "attacker"}, "planted-2"))  # no seal at all
    tampered = genuine.to_dict()
    tampered["raw"]["data"]["message"]["data"] = base64.b64encode(b'{"order": 7, "refund_to": "attacker"}').decode()
    tampered["run_id"] = "tampered-run"
    day = name.split("/")[1:4]
    gcs.client().bucket(BUCKET).blob(f"keyed/{'/'.join(day)}/{DAG}/tampered-run.json").upload_from_string(
        json.dumps(tampered)
    )
    foreign = _planted({"refund_to": "attacker"}, "foreign-1")  # sealed by another deployment, or a retired key
    DeadLetterStore(uri, client=gcs.client(), seal=SealKeys.parse(OTHER_KEY)).write(foreign)

    result = _replay(airflow, gcs, uri, routes, DEAD_LETTER_SEAL_SECRET=KEY)
    assert result.returncode == 1, result.stdout + result.stderr
    refused = sorted(line for line in result.stdout.splitlines() if line.startswith("refused"))
    assert len(refused) == 3, result.stdout
    assert "no seal" in result.stdout and "does not match" in result.stdout, result.stdout
    assert "not sealed with a key this replay holds" in result.stdout, result.stdout
    [(dag, run_id)] = list(airflow.runs)  # exactly one run: the genuine record's, with its message as the conf
    assert dag == DAG and run_id == genuine.run_id
    assert airflow.runs[(dag, run_id)]["conf"]["order"] == 7

    # Rotation: the key that sealed it, kept as the previous one, still verifies; a wrong seal stays refused even
    # with --accept-unsealed, which only lets records without a seal through.
    rotated = _replay(
        airflow, gcs, uri, routes, "--accept-unsealed", "--include-replayed",
        DEAD_LETTER_SEAL_SECRET=NEW_KEY,  # OTHER_KEY listed too: here it stands for a retired key
        DEAD_LETTER_SEAL_SECRET_PREVIOUS=f"{OTHER_KEY},{KEY}",
    )  # fmt: skip
    lines = rotated.stdout.splitlines()
    assert sum(line.startswith("refused") for line in lines) == 1 and "does not match" in rotated.stdout, lines
    assert sum(line.startswith("duplicate") for line in lines) == 1, lines  # the genuine one, already run
    assert sum(line.startswith("done") for line in lines) == 2, lines  # the foreign-key one and the unsealed one


HOLD = "projects/p/subscriptions/dagtrigger-dead-events-hold"
SOURCE = "projects/p/subscriptions/eventarc-us-central1-dagtrigger-storage-000-sub-123"


def test_a_record_the_drain_writes_is_sealed_and_replays_once(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    """`dagtrigger drain` writes dead letters too (an event from the trigger's dead-letter topic that fails for good):
    it seals them with the same key, and replay accepts them (a storage record: Cloud Storage is asked as well)."""
    landing, uri = "drain-landing", f"gs://{BUCKET}/drained"
    gcs.create_bucket(landing)
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps({"routes": [{"name": "files", "dag_id": "landing_files", "match": {"bucket": landing}}]})
    )
    blob = gcs.client().bucket(landing).blob("in/a.csv")
    blob.upload_from_string(b"id,amount\n1,2\n")
    stored = dict(gcs.client().bucket(landing).get_blob("in/a.csv")._properties)
    out = storage_event("http://unused", landing, "in/a.csv", str(stored["generation"]))
    body = json.dumps({**json.loads(out.body), **stored})  # the object resource as Cloud Storage reports it
    attrs = {f"ce-{k}": v for k, v in out.attributes.items() if k != "datacontenttype"}
    env = {**event_env(airflow.url, routes), "DEAD_LETTER_URI": uri, "DEAD_LETTER_SEAL_SECRET": KEY, **gcs.env()}
    airflow.missing_dags.add("landing_files")  # the fault: a 404, so the drained event is recorded
    try:
        with FakePubSub() as pubsub:
            pubsub.create_subscription(HOLD)
            pubsub.publish_dead_letter(HOLD, body.encode(), {**attrs, "content-type": out.headers["Content-Type"]},
                                       source=SOURCE)  # fmt: skip
            drained = subprocess.run(
                [sys.executable, "-m", "dagtrigger", "drain", HOLD, "--source-subscription", SOURCE],
                cwd=REPO, env={**os.environ, **env, "PUBSUB_EMULATOR_HOST": pubsub.url.removeprefix("http://")},
                capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
    finally:
        airflow.missing_dags.discard("landing_files")
    assert "dead_lettered" in drained.stdout + drained.stderr, drained.stdout + drained.stderr
    [(_, record)] = list(DeadLetterStore(uri, client=gcs.client()).list())
    assert SealKeys.parse(KEY).verified(record)  # raises if the seal does not verify
    assert airflow.runs == {}

    result = _replay(airflow, gcs, uri, routes, DEAD_LETTER_SEAL_SECRET=KEY)
    assert result.returncode == 0, result.stdout + result.stderr
    [(dag, run_id)] = list(airflow.runs)
    assert dag == "landing_files" and run_id == record.run_id
