"""The same Airflow answer gives the same outcome on a plain route and on a batched route.

Errors become outcomes in one place (``outcome.from_error``, ``outcome.classify``); before, the batcher built RETRY by
hand, so an AIRFLOW_URI answering a redirect was a dead letter on a plain route and a 24-hour redelivery on a batched
one. Each row is one cause of each ``OutcomeKind``; the fake Airflow (a fault-injecting fake: it answers the trigger
POSTs from the row) and the storage emulator (members of the batch) are local.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest

from dagtrigger import events, function
from dagtrigger.batch.members import MembersStore
from dagtrigger.outcome import OutcomeKind
from dagtrigger.pipeline import Pipeline
from dagtrigger.rules import parse_rules
from devtools.ports import free_port
from tests.support.clock import FakeClock
from tests.support.fakes import Answer, FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator

from .samples import storage_attrs, storage_data

WHEN = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)  # any date: the pipeline's clock and the event agree on it
BUCKET = "members-bucket"
MATCH = {"kind": "storage", "bucket": "landing", "name": {"prefix": "in/"}}
PLAIN = {"routes": [{"name": "plain", "dag_id": "load", "match": MATCH}]}
BATCHED = {
    "routes": [
        {"name": "batched", "dag_id": "load", "match": MATCH, "batch": {"window": 60, "members": f"gs://{BUCKET}/m"}}
    ]
}
MANY = 40  # more answers than any retry policy asks for


class Cause(NamedTuple):
    name: str
    answers: list[Answer]  # what Airflow answers to the trigger POSTs
    kind: OutcomeKind
    exists: bool = False  # the run is already in Airflow (a redelivery)
    unreachable: bool = False  # nothing listens at AIRFLOW_URI


CAUSES = [
    Cause("created", [], OutcomeKind.DONE),
    Cause("already there (409, our run exists)", [], OutcomeKind.DUPLICATE, exists=True),
    Cause("bad request", [Answer(400, {"detail": "bad conf"})] * MANY, OutcomeKind.FAILED),
    Cause("no such DAG", [Answer(404, {"detail": "DAG not found"})] * MANY, OutcomeKind.FAILED),
    Cause("unprocessable", [Answer(422, {"detail": "invalid"})] * MANY, OutcomeKind.FAILED),
    Cause("redirect", [Answer(302, "", {"Location": "https://login.example/"})] * MANY, OutcomeKind.FAILED),
    Cause("not authenticated", [Answer(401, {"detail": "no"})] * MANY, OutcomeKind.RETRY),
    Cause("forbidden", [Answer(403, {"detail": "no"})] * MANY, OutcomeKind.RETRY),
    Cause("shedding load", [Answer(429, {"detail": "slow down"})] * MANY, OutcomeKind.RETRY),
    Cause("server error", [Answer(503, "down")] * MANY, OutcomeKind.RETRY),
    Cause("nothing listening", [], OutcomeKind.RETRY, unreachable=True),
]


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        emulator.create_bucket(BUCKET)
        yield emulator


def _pipeline(uri: str, routes: dict[str, Any], gcs: StorageEmulator) -> Pipeline:
    env = {"AIRFLOW_URI": uri, "DAG_ID": "unused", "AIRFLOW_AUTH": "none", "AIRFLOW_RETRY_BUDGET_SECONDS": "1"}
    clock = FakeClock(wall=WHEN + timedelta(seconds=5))  # retries wait on it: no real sleeping
    base = function.build(env, clock=clock).pipeline
    members = MembersStore(gcs.client(), budget_s=3, timeout_s=2)
    return Pipeline(base.settings, base.client, parse_rules(routes, "test"), base.log, members=members, clock=clock)


def _outcome(cause: Cause, routes: dict[str, Any], gcs: StorageEmulator, name: str) -> OutcomeKind:
    event = events.from_cloud_event(
        storage_attrs(name=name, time=WHEN.isoformat().replace("+00:00", "Z")), storage_data(name=name)
    )
    with FakeAirflow() as airflow:
        uri = f"http://127.0.0.1:{free_port()}" if cause.unreachable else airflow.url
        if cause.exists:  # the first delivery, by another instance (so this one asks Airflow, not its own memory)
            assert _pipeline(uri, routes, gcs).process(event).kind is OutcomeKind.DONE
        pipeline = _pipeline(uri, routes, gcs)
        airflow.faults = list(cause.answers)
        return pipeline.process(event).kind


@pytest.mark.parametrize("cause", CAUSES, ids=[c.name for c in CAUSES])
def test_plain_and_batched_routes_give_the_same_outcome(cause: Cause, gcs: StorageEmulator) -> None:
    name = f"in/{cause.name.replace(' ', '-')}.csv"
    plain = _outcome(cause, PLAIN, gcs, name)
    batched = _outcome(cause, BATCHED, gcs, name)
    assert (plain, batched) == (cause.kind, cause.kind)


def test_every_outcome_kind_has_a_cause() -> None:
    assert {c.kind for c in CAUSES} == set(OutcomeKind) - {OutcomeKind.IGNORED}
