"""drain, end to end: real Airflow 2.11 and 3.3, a real trigger_event function process for the live deliveries,
``python -m dagtrigger drain`` as the operator runs it, the storage emulator (uploads to verify, dead letters), and a
FAKE Pub/Sub REST server on 127.0.0.1 standing for the trigger's dead-letter topic's subscription.

The dead-letter topic holds: two uploads that never got their run (one as a binary-mode CloudEvent, one as a Cloud
Storage notification), one whose late delivery reached the function before the drain, one routed to a DAG Airflow
does not have, a temporary-upload name no route takes, and a message published straight to the topic (not forwarded
by dead lettering). A dry run creates and acknowledges nothing; the drain creates exactly the two missing runs, writes
the dead letter, acknowledges four and gives two back; the next drain meets the two again and nothing doubles; a
message pulled by a drain that died comes back once its hold has passed. Runs are read back from Airflow's API, dead
letters from the emulator, acknowledgements from the fake.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from dagtrigger.accounting.pubsub_rest import Subscriber
from dagtrigger.events import from_cloud_event
from dagtrigger.run_id import run_id_for
from dagtrigger.send import storage_event
from devtools.fake_pubsub import FakePubSub
from devtools.localairflow import AirflowServer
from devtools.localfunction import REPO, FunctionProcess
from tests.support.function_env import function_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator

pytestmark = pytest.mark.integration

DAG = "dagtrigger_example"
SOURCE = "projects/acct-proj/subscriptions/eventarc-us-central1-dagtrigger-storage-000-sub-123"
HOLD = "projects/acct-proj/subscriptions/dagtrigger-dead-events-hold"


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        yield emulator


@pytest.fixture
def pubsub() -> Iterator[FakePubSub]:
    with FakePubSub() as fake:
        fake.create_subscription(HOLD)
        yield fake


def binary_mode(out: Any) -> tuple[dict[str, str], bytes]:
    """A live CloudEvent as Eventarc's transport topic carries it (Google's Pub/Sub binding, binary mode)."""
    attrs = {f"ce-{k}": v for k, v in out.attributes.items() if k != "datacontenttype"}
    return {**attrs, "content-type": out.headers["Content-Type"]}, out.body


def as_notification(resource: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    attrs = {
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "bucketId": resource["bucket"],
        "objectId": resource["name"],
        "objectGeneration": resource["generation"],
        "eventTime": resource["timeCreated"],
    }
    return attrs, json.dumps(resource).encode()


def dead_letter(pubsub: FakePubSub, attributes: dict[str, str], data: bytes) -> str:
    """What Pub/Sub forwards from the trigger's subscription once it gives up on an event."""
    return pubsub.publish_dead_letter(HOLD, data, attributes, source=SOURCE)


def drain(
    env: dict[str, str], pubsub: FakePubSub, *args: str, summary: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    extra = ["--json", str(summary)] if summary else []
    done = subprocess.run(
        [sys.executable, "-m", "dagtrigger", "drain", HOLD, "--source-subscription", SOURCE, *extra, *args],
        cwd=REPO, env={**os.environ, **env, "PUBSUB_EMULATOR_HOST": pubsub.url.removeprefix("http://")},
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    return done, (json.loads(summary.read_text()) if summary and summary.exists() else {})


def test_drain_sends_what_the_dead_letter_topic_kept_once_and_acks_only_what_is_accounted_for(
    airflow: AirflowServer, gcs: StorageEmulator, pubsub: FakePubSub, tmp_path: Path
) -> None:
    landing, ops = f"drain-landing-{airflow.major}", f"drain-ops-{airflow.major}"
    gcs.create_bucket(landing)
    gcs.create_bucket(ops)
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"routes:\n"
        f"  - {{name: plain, dag_id: {DAG}, match: {{bucket: {landing}, name: {{prefix: in/}}}}}}\n"
        f"  - {{name: refused, dag_id: no_such_dag, match: {{bucket: {landing}, name: {{prefix: refused/}}}}}}\n",
        encoding="utf-8",
    )
    env = {
        **function_env(airflow, ROUTES_FILE=str(routes), MAX_EVENT_AGE_SECONDS=str(7 * 86400)),
        "DEAD_LETTER_URI": f"gs://{ops}/dl",
        **gcs.env(),
    }
    del env["DAG_ID"]
    client = gcs.client()

    def upload(name: str) -> Any:
        client.bucket(landing).blob(name).upload_from_string(b"id,amount\n1,2\n")
        stored = dict(client.bucket(landing).get_blob(name)._properties)
        out = storage_event("http://unused", landing, name, str(stored["generation"]))
        body = {**json.loads(out.body), **{k: stored[k] for k in ("size", "md5Hash", "crc32c", "timeCreated")}}
        return replace(out, body=json.dumps(body).encode())

    def ours() -> list[str]:
        """This test's runs: the DAG is shared with other tests of the session (their buckets differ)."""
        return [r["dag_run_id"] for r in airflow.list_runs(DAG) if f"__{landing}__" in r["dag_run_id"]]

    missing, late, noted = upload("in/é à/a 1.csv"), upload("in/late.csv"), upload("in/日本/c.csv")
    refused, temporary = upload("refused/r.csv"), upload("in/x.tmp")
    with FunctionProcess("trigger_event", env, tmp_path) as function:
        live = function.send_event(dict(late.attributes), json.loads(late.body))  # the late delivery
        assert live.status_code == 200, live.text
    for out in (missing, late, refused, temporary):
        dead_letter(pubsub, *binary_mode(out))
    dead_letter(pubsub, *as_notification(json.loads(noted.body)))
    forged = pubsub.publish(HOLD, missing.body, binary_mode(missing)[0])
    assert ours() == [run(late)]

    dry, dry_summary = drain(env, pubsub, "--dry-run", summary=tmp_path / "dry.json")
    assert dry.returncode == 1 and dry_summary, dry.stdout + dry.stderr  # the unrouted and forged ones stay
    assert (dry_summary["would_trigger"], dry_summary["present"], dry_summary["acked"]) == (3, 1, 0)
    assert len(pubsub.remaining(HOLD)) == 6 and ours() == [run(late)]

    first, counts = drain(env, pubsub, summary=tmp_path / "first.json")
    assert first.returncode == 1, first.stdout + first.stderr
    assert {k: counts[k] for k in ("triggered", "duplicate", "dead_lettered", "unrouted", "refused")} == {
        "triggered": 2, "duplicate": 1, "dead_lettered": 1, "unrouted": 1, "refused": 1,
    }  # fmt: skip
    assert (counts["acked"], counts["left"]) == (4, 2)
    runs = sorted(ours())
    assert runs == sorted([run(missing), run(late), run(noted)])
    conf = airflow.get_run(DAG, run(missing))["conf"]  # type: ignore[index]
    assert conf["name"] == "in/é à/a 1.csv" and conf["_event"]["via"] == "drain"
    (record,) = [json.loads(b.download_as_bytes()) for b in client.list_blobs(ops, prefix="dl/")]
    assert record["run_id"] == run(refused) and record["status"] == 404
    assert len(pubsub.remaining(HOLD)) == 2 and forged in pubsub.remaining(HOLD)

    second, again = drain(env, pubsub, "--ack-unrouted", summary=tmp_path / "second.json")
    assert second.returncode == 1 and (again["messages"], again["unrouted"], again["refused"]) == (2, 1, 1)
    assert pubsub.remaining(HOLD) == [forged]
    assert sorted(ours()) == runs  # nothing doubled

    # A drain that dies after pulling: its message is held, then delivered again and sent once.
    straggler = upload("in/straggler.csv")
    kept = dead_letter(pubsub, *binary_mode(straggler))
    dead = Subscriber(HOLD, requests.Session(), pubsub.url)
    pulled, _ = dead.pull(10)
    dead.modify_deadline([m.ack_id for m in pulled], 600)
    assert sorted(m.message_id for m in pulled) == sorted([forged, kept])
    _, during = drain(env, pubsub, summary=tmp_path / "held.json")
    assert during["messages"] == 0 and kept in pubsub.remaining(HOLD)  # held by the drain that died
    pubsub.advance(601)
    after, later = drain(env, pubsub, summary=tmp_path / "after.json")
    assert (later["triggered"], later["refused"]) == (1, 1), after.stdout + after.stderr
    assert pubsub.remaining(HOLD) == [forged]
    assert airflow.get_run(DAG, run(straggler)) is not None
    assert pubsub.deliveries(HOLD)[kept] == 2


def run(out: Any) -> str:
    """The run id the live event of this upload gets."""
    return run_id_for(from_cloud_event(dict(out.attributes), json.loads(out.body)))
