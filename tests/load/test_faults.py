"""Fault scenarios at modest sizes: every event ends as exactly one DAG run or one dead letter.

Each scenario drives real functions-framework processes (two or three instances; duplicates land on another one)
with real CloudEvents from a client that redelivers like Eventarc / Pub/Sub, injects one kind of fault mid-burst
(loadtest/scenarios.py, loadtest/fake_airflow.py), and counts from what the servers recorded. A scenario also has to
show that its fault really happened, so a burst that finished before the fault cannot pass by accident. Sizes and
more scenarios: ``bash devtools/run-load.sh --help``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from devtools.fakes import Answer, FakeMetadataServer, FakeServer, Seen
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from loadtest.burst import ClientPolicy
from loadtest.scenarios import FAKE_SCENARIOS, BurstSpec, Rig, run_fake_scenario, run_real
from loadtest.tally import Tally
from tests.unit.samples import storage_attrs, storage_data

pytestmark = pytest.mark.integration

SPEC = BurstSpec(events=120, concurrency=12, duplicates=0.1, poison=0.05)
POLICY = ClientPolicy(max_redeliveries=12, request_timeout_s=40.0, deadline_s=150.0)

# What the fault injector must have done in each scenario.
EVIDENCE: dict[str, Callable[[Tally], bool]] = {
    "storm503": lambda t: "503×" in t.injected and t.answers_5xx > 0,
    "throttle429": lambda t: "429×" in t.injected and t.answers_5xx > 0,
    "hang": lambda t: "hang-200×" in t.injected and "hang-409×" in t.injected,
    "reset": lambda t: all(f in t.injected for f in ("reset-before×", "reset-after-200×", "reset-after-409×")),
    # Tokens were refused; a still-valid token may carry the requests through the outage (no 5xx needed).
    "token": lambda t: "refused 0" not in t.injected and "refused" in t.injected,
    "html": lambda t: "502-html×" in t.injected and "500-html×" in t.injected,
    # The outage was felt: answers refused or failed, or requests held through it inside the function's retry budget.
    "api-restart": lambda t: "API server down" in t.injected and (t.answers_5xx + t.no_answer > 0 or t.p99_ms > 1000),
    "pg-restart": lambda t: "PostgreSQL down" in t.injected and (t.answers_5xx + t.no_answer > 0 or t.p99_ms > 1000),
    "race": lambda t: t.sent == 2 * t.distinct,  # every event twice, both copies released together
}


def assert_exactly_once(tally: Tally) -> None:
    summary = f"{tally}"
    assert tally.duplicates == 0, summary
    assert tally.lost == 0, summary
    assert tally.run_and_dead_letter == 0, summary
    assert tally.notes == "", summary
    assert tally.dead_letters == tally.poisoned, summary  # the poison events, and only them
    assert tally.runs + tally.dead_letters == tally.distinct, summary
    assert EVIDENCE[tally.scenario](tally), f"the fault did not happen: {summary}"


@pytest.mark.parametrize("scenario", FAKE_SCENARIOS)
def test_fault_scenario(load_rig: Rig, scenario: str) -> None:
    assert_exactly_once(run_fake_scenario(load_rig, scenario, SPEC, POLICY))


def test_airflow_killed_and_restarted_mid_burst(load_rig: Rig, airflow3: AirflowServer) -> None:
    """(e) Against the real Airflow 3: a run committed just before the SIGKILL, whose answer was lost, gets 409 after
    the restart and is never created twice; events sent while Airflow is down are redelivered.

    One instance: Airflow 3 on SQLite takes one writer at a time (two instances × AIRFLOW_MAX_IN_FLIGHT=1 wedged the
    restarted api-server in a clean-clone run: 38 of 120 events never got a run before the client gave up). The
    multi-instance restart runs on PostgreSQL below."""
    spec = replace(SPEC, poison=0.0)
    one = replace(load_rig, instances=1)
    assert_exactly_once(run_real(one, airflow3, "api-restart", spec, POLICY, max_in_flight=1))


PG_SPEC = BurstSpec(events=300, concurrency=16, duplicates=0.1, poison=0.0)


@pytest.mark.parametrize("scenario", ["api-restart", "pg-restart", "race"])
def test_postgres_fault(load_rig: Rig, airflow3_pg: AirflowServer, scenario: str) -> None:
    """(e, h, i) On PostgreSQL with the scheduler and three instances: the API server killed, PostgreSQL itself
    crashed, and concurrent duplicates racing on the unique constraint (409 or a 5xx for the loser): one run each."""
    rig3 = replace(load_rig, instances=3)  # 3 × 4 in flight: under the API server's default pool of 15 connections
    assert_exactly_once(run_real(rig3, airflow3_pg, scenario, PG_SPEC, POLICY, max_in_flight=4))


# ---------------------------------------------------------------------------------------- product bugs found here


def _upload(n: int) -> tuple[dict[str, str], dict[str, str]]:
    name = f"incoming/bug-{n}.csv"
    return storage_attrs(name=name, id=f"bug-{n}", datacontenttype="application/json"), storage_data(name=name)


def test_a_2xx_that_is_not_a_dag_run_is_redelivered_not_acknowledged(tmp_path: Path) -> None:
    def sign_in_page(seen: Seen) -> Answer:
        if seen.path.endswith("/version"):
            return Answer(200, {"version": "3.3.2"})
        return Answer(200, "<!DOCTYPE html><html><body><form action='/login'>Sign in</form></body></html>")

    env = {"AIRFLOW_AUTH": "none", "DAG_ID": "dagtrigger_example", "AIRFLOW_RETRY_BUDGET_SECONDS": "1"}
    with FakeServer(sign_in_page) as proxy:
        with FunctionProcess("trigger_event", {**env, "AIRFLOW_URI": proxy.url}, tmp_path) as function:
            response = function.send_event(*_upload(1))
    # No DAG run was created; acknowledging the event loses it. It must be answered non-2xx (redelivered).
    assert response.status_code == 503, response.text


def test_a_token_outage_answers_every_waiting_request_within_one_token_attempt(tmp_path: Path) -> None:
    with FakeMetadataServer() as metadata, FakeServer(lambda seen: Answer(200, {"state": "queued"})) as airflow:
        metadata.fail_tokens = True
        env = {"AIRFLOW_URI": airflow.url, "DAG_ID": "dagtrigger_example", "AIRFLOW_API_VERSION": "v2"}
        function = FunctionProcess("trigger_event", {**env, **metadata.env()}, tmp_path)
        function.start()
        try:

            def send(n: int) -> int:
                headers, body = to_binary(CloudEvent(*_upload(n)))
                try:
                    return requests.post(function.url, headers=headers, data=body, timeout=20).status_code
                except requests.Timeout:
                    return 0  # still waiting behind the other requests' token fetches

            with ThreadPoolExecutor(3) as pool:
                statuses = list(pool.map(send, range(3)))
        finally:
            if function.proc is not None:  # threads sleeping in google-auth's backoff would delay a clean stop
                os.killpg(function.proc.pid, signal.SIGKILL)
                function.proc.wait(10)
    # google-auth tries the metadata server 5 times over ~15 s; every waiting request should share that failure
    # (answered 503 within ~15 s) instead of starting its own ~15 s of attempts after the previous one gave up.
    assert statuses == [503] * 3, statuses
