"""why and sweep against real Airflow 2.11 and 3.3 on PostgreSQL with their schedulers, two function processes and
the storage emulator.

200 objects are uploaded; the events of 150 reach the function (10 to a DAG Airflow does not have, so they end as
dead letters; 10 ignored names; 10 batch members); 50 never do. ``sweep --dry-run`` finds exactly the 50 and creates
nothing; two sweeps started together while the function receives redeliveries of some of the 50 leave exactly one
run per object, touch no dead letter and no ignored object; a third sweep finds nothing. Missing batch members are
recorded, flagged late where their window's run had started, and every batch run exists once. ``why`` gives each
verdict. Everything is read back from Airflow's API and the emulator, not from our own counters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dagtrigger.accounting.synthetic import finalized_event
from dagtrigger.run_id import run_id_for
from dagtrigger.send import storage_event
from devtools.localairflow import AirflowServer
from devtools.localfunction import REPO, FunctionProcess, clean_env
from tests.support.function_env import function_env
from tests.support.storage_emulator import StorageEmulator, storage_emulator

pytestmark = pytest.mark.integration

LANDING, OPS = "acct-landing", "acct-ops"
PLAIN_DAG, BATCH_DAG = "dagtrigger_paused", "dagtrigger_batch"  # the paused DAG's runs stay queued: no task load
WINDOW_S = 10
ROUTES = f"""
routes:
  - name: plain
    dag_id: {PLAIN_DAG}
    match: {{bucket: {LANDING}, name: {{prefix: in/}}}}
  - name: refused
    dag_id: no_such_dag
    match: {{bucket: {LANDING}, name: {{prefix: refused/}}}}
  - name: batched
    dag_id: {BATCH_DAG}
    match: {{bucket: {LANDING}, name: {{prefix: batch/}}}}
    batch: {{window: {WINDOW_S}, members: gs://{OPS}/members}}
  - name: hourly
    dag_id: {BATCH_DAG}
    match: {{bucket: {LANDING}, name: {{prefix: hourly/}}}}
    batch: {{window: 3600, members: gs://{OPS}/hourly}}
"""
RUN_DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        yield emulator


@pytest.fixture(scope="module", params=[2, 3], ids=["airflow2", "airflow3"])
def airflow_pg(
    request: pytest.FixtureRequest, gcs: StorageEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowServer]:
    major = int(request.param)
    workdir = tmp_path_factory.mktemp(f"acct-airflow{major}")
    with AirflowServer(
        major, workdir, database="postgres", scheduler=True, auth="password", extra_env=gcs.env()
    ) as server:
        yield server


class World:
    """One major's buckets, routes file, settings and two function processes."""

    def __init__(self, airflow: AirflowServer, gcs: StorageEmulator, folder: Path) -> None:
        self.airflow, self.gcs, self.folder = airflow, gcs, folder
        self.landing, self.ops = f"{LANDING}-{airflow.major}", f"{OPS}-{airflow.major}"
        self.client = gcs.client()
        for bucket in (self.landing, self.ops):
            if self.client.lookup_bucket(bucket) is None:
                gcs.create_bucket(bucket)
        routes = ROUTES.replace(LANDING, self.landing).replace(OPS, self.ops)
        (folder / "routes.yaml").write_text(routes)
        self.env = {
            **function_env(airflow, ROUTES_FILE=str(folder / "routes.yaml"), AIRFLOW_MAX_IN_FLIGHT="4"),
            **gcs.env(),
            "DEAD_LETTER_URI": f"gs://{self.ops}/dead-letters",
        }
        del self.env["DAG_ID"]

    def upload(self, name: str) -> dict[str, Any]:
        blob = self.client.bucket(self.landing).blob(name)
        blob.upload_from_string(b"a,b\n1,2\n", content_type="text/csv")
        return dict(self.client.bucket(self.landing).get_blob(name)._properties)

    def deliver(self, function: FunctionProcess, resource: dict[str, Any]) -> None:
        """The CloudEvent Eventarc sends for this upload: its attributes, the object resource as data."""
        created = datetime.fromisoformat(resource["timeCreated"].replace("Z", "+00:00"))
        out = storage_event(function.url, self.landing, resource["name"], str(resource["generation"]), now=created)
        answer = function.send_event(dict(out.attributes), resource)
        assert answer.status_code == 200, answer.text

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = clean_env(self.env, self.folder)
        return subprocess.run(
            [sys.executable, "-m", "dagtrigger", *args], env=env, cwd=REPO, capture_output=True, text=True,
            timeout=300, check=False,
        )  # fmt: skip

    def sweep(self, *args: str) -> dict[str, Any]:
        out = self.folder / f"sweep-{time.monotonic_ns()}.json"
        done = self.cli("sweep", "--since", "1h", "--settle", "0", "--json", str(out), *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(out.read_text()))

    def why(self, name: str) -> dict[str, Any]:
        done = self.cli("why", f"gs://{self.landing}/{name}", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return {r["route"]: r for r in json.loads(done.stdout)["routes"]}

    def runs(self, dag_id: str) -> dict[str, dict[str, Any]]:
        return {r["dag_run_id"]: r for r in self.airflow.list_runs(dag_id)}

    def members(self, folder: str = "members/") -> list[dict[str, Any]]:
        bucket = self.client.bucket(self.ops)
        return [json.loads(bucket.blob(name).download_as_bytes()) for name in self.gcs.objects(self.ops, folder)]

    def dead_letters(self) -> dict[str, str]:
        """Dead-letter object name → generation: a sweep must leave every one as it was."""
        return {b.name: str(b.generation) for b in self.client.list_blobs(self.ops, prefix="dead-letters/20")}


def plain_run_id(resource: dict[str, Any]) -> str:
    return run_id_for(finalized_event(resource))


def test_sweep_finds_the_50_never_delivered_and_sends_each_once(
    airflow_pg: AirflowServer, gcs: StorageEmulator, tmp_path: Path
) -> None:
    world = World(airflow_pg, gcs, tmp_path)
    plain = [world.upload(f"in/{n:03}/orders-é.csv") for n in range(160)]
    refused = [world.upload(f"refused/{n:02}.csv") for n in range(10)]
    ignored = [world.upload(f"in/tmp/{n}.tmp") for n in range(5)] + [world.upload(f"in/dir{n}/") for n in range(5)]
    batch = [world.upload(f"batch/part-{n:02}.csv") for n in range(20)]
    delivered = plain[:120] + refused + ignored + batch[::2]
    missing_plain, missing_batch = plain[120:], batch[1::2]
    assert len(delivered) == 150 and len(missing_plain) + len(missing_batch) == 50
    with (
        FunctionProcess("trigger_event", world.env, tmp_path / "f1") as f1,
        FunctionProcess("trigger_event", world.env, tmp_path / "f2") as f2,
    ):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: world.deliver((f1, f2)[i % 2], delivered[i]), range(len(delivered))))
        assert len(world.runs(PLAIN_DAG)) == 120
        dead = world.dead_letters()
        assert len(dead) == 10
        batch_runs = world.runs(BATCH_DAG)
        for run_id in batch_runs:  # the delivered members' windows run (and start) before any sweep
            assert airflow_pg.wait_run(BATCH_DAG, run_id, RUN_DEADLINE_S)["state"] == "success"
        members_before = world.members()
        on_time = Counter(m["key"] for m in members_before if not m["late"])
        assert on_time == Counter(run_id_for(finalized_event(r)) for r in batch[::2])  # one member per delivery…
        late_before = {m["key"] for m in members_before if m["late"]}  # …plus a late copy of any delivered after its
        assert late_before <= set(on_time)  # 10 s window's run had started (a slow machine): the late rule, by design

        dry = world.sweep("--dry-run")
        counts = {k: dry[k] for k in ("objects_listed", "matched", "present", "dead_lettered", "ignored", "missing")}
        assert counts == {"objects_listed": 200, "matched": 190, "present": 130, "dead_lettered": 10, "ignored": 10,
                          "missing": 50}, dry  # fmt: skip
        assert dry["triggered"] == 0 and dry["failed"] == 0
        assert (
            len(world.runs(PLAIN_DAG)) == 120
            and len(world.members()) == len(members_before)
            and set(world.runs(BATCH_DAG)) == set(batch_runs)
        )
        assert dry["airflow_calls"] <= 190 / 100 + 50 + 6, dry  # pages + one GET per missing plain pair + probes

        verdicts = {
            "triggered": world.why(plain[0]["name"])["plain"],
            "dead_lettered": world.why(refused[0]["name"])["refused"],
            "ignored": world.why(ignored[0]["name"])["plain"],
            "missing": world.why(missing_plain[0]["name"])["plain"],
        }
        for verdict, answer in verdicts.items():
            assert answer["verdict"] == verdict, answer
        assert verdicts["triggered"]["run_state"] == "queued"
        assert verdicts["triggered"]["run_id"] == plain_run_id(plain[0])
        assert "no_such_dag" in verdicts["dead_lettered"]["dead_letter"]["object"]
        assert "temporary" in verdicts["ignored"]["reason"]
        batched = world.why(batch[0]["name"])["batched"]
        assert batched["verdict"] == "triggered" and batched["batch"]["member_recorded"], batched
        assert world.why(missing_batch[0]["name"])["batched"]["verdict"] == "missing"
        checked = world.cli("check", "--json", "--object", f"gs://{world.landing}/{missing_plain[0]['name']}")
        step = json.loads(checked.stdout)["steps"][-1]
        assert (step["status"], step["symptom"]) == ("warn", "object-missing"), checked.stdout + checked.stderr

        # Two sweeps at once, while the function receives redeliveries of half the missing plain uploads.
        redelivered = missing_plain[::2]
        results: list[dict[str, Any]] = []
        sweeps = [threading.Thread(target=lambda: results.append(world.sweep())) for _ in range(2)]
        for thread in sweeps:
            thread.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: world.deliver((f1, f2)[i % 2], redelivered[i]), range(len(redelivered))))
        for thread in sweeps:
            thread.join(300)
        assert len(results) == 2 and all(r["failed"] == 0 for r in results), results

    runs = world.runs(PLAIN_DAG)
    assert len(runs) == 160  # exactly one run per object
    assert set(runs) == {plain_run_id(r) for r in plain}
    swept = [r for r in runs.values() if (r.get("conf") or {}).get("_event", {}).get("via") == "sweep"]
    assert 0 < len(swept) <= 40 and all(r["conf"]["name"].startswith("in/") for r in swept)
    assert sum(r["raced"] for r in results) + sum(r["present"] for r in results) >= 2 * 130
    assert world.dead_letters() == dead  # not written, rewritten or re-sent
    assert not any(plain_run_id(r) in runs for r in ignored)

    members = world.members()
    keys = {run_id_for(finalized_event(r)) for r in missing_batch}
    recorded = {m["key"] for m in members}
    assert keys <= recorded  # every missing member recorded in its own window…
    late = [m for m in members if m["late"]]
    assert {m["key"] for m in late} == keys | late_before  # …and again, flagged late: its window had started
    batch_after = world.runs(BATCH_DAG)
    assert {m["batch_run_id"] for m in members} <= set(batch_after)  # each window's run exists (run ids are unique)

    again = world.sweep()
    assert (again["missing"], again["triggered"], again["failed"]) == (0, 0, 0), again
    assert len(world.runs(PLAIN_DAG)) == 160


def test_why_says_pending_while_a_batch_window_is_open(
    airflow_pg: AirflowServer, gcs: StorageEmulator, tmp_path: Path
) -> None:
    world = World(airflow_pg, gcs, tmp_path)
    left = 3600 - datetime.now(UTC).timestamp() % 3600
    if left < 60:  # the hour's window closes within a minute: upload into the next one
        time.sleep(left + 1)
    resource = world.upload(f"hourly/{airflow_pg.major}/file.csv")
    with FunctionProcess("trigger_event", world.env, tmp_path / "f3") as f3:
        world.deliver(f3, resource)
    answer = world.why(resource["name"])["hourly"]
    assert answer["verdict"] == "pending", answer
    assert answer["batch"]["member_recorded"] and not answer["batch"]["window_closed"]
