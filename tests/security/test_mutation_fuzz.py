"""Hypothesis mutates captured signed requests against a real process; a run from a mutated request is a failure.

Covered: dagtrigger-v2 routes, Standard Webhooks routes, a batched route (no new member and no new batch run from a
mutation), and relayed Cloud Storage notifications (a storage run only through the declared channel of a route-named
bucket, with attributes and payload agreeing). Integration-marked: every case talks to real processes."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_data

from .harness import ROUTES, SECRET, event_env, webhook_env

pytestmark = pytest.mark.integration
PATHS = ["/shop", "/shop/dags/shop_orders", "/billing", "/batched"]
STD = "whsec_" + base64.b64encode(b"standard-key-0123456789abcdefgh").decode()
CHANNEL = "projects/example-project/topics/gcs-landing"
FUZZ_ROUTES = {
    "routes": [
        *ROUTES["routes"],
        {
            "name": "std",
            "dag_id": "std_dag",
            "match": {"kind": "webhook", "path": {"prefix": "/std"}},
            "webhook": {"scheme": "standard-webhooks", "secrets": "STD_SECRET"},
        },
        {
            "name": "batched",
            "dag_id": "batched_dag",
            "match": {"kind": "webhook", "path": {"prefix": "/batched"}},
            "batch": {"window": 3600, "members": "gs://members/fuzz"},
        },
    ]
}


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket("members")
        yield emulator


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, gcs: StorageEmulator
) -> Iterator[tuple[FunctionProcess, FakeAirflow]]:
    workdir = tmp_path_factory.mktemp("mutations")
    routes = workdir / "routes.json"
    routes.write_text(json.dumps(FUZZ_ROUTES))
    env = webhook_env("", routes, STD_SECRET=STD, **gcs.env())
    with (
        FakeAirflow("v2") as airflow,
        FunctionProcess("trigger_http", {**env, "AIRFLOW_URI": airflow.url}, workdir) as fn,
    ):
        yield fn, airflow


def _post(fn: FunctionProcess, target: str, headers: dict[str, str], body: bytes, method: str = "POST") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", fn.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


mutations = st.one_of(
    st.tuples(st.just("path"), st.sampled_from(["/shop/", "/shopX", "/shop/dags/shop_refunds", "/billing", "/",
                                                "/%73hop", "/shop//", "/SHOP", "/shop/dags/shop_orders/"])),
    st.tuples(st.just("query"), st.sampled_from(["?a=1", "?", "?dag_id=shop_refunds"])),
    st.tuples(st.just("key"), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)),
    st.tuples(st.just("add-header"), st.sampled_from(["X-Idempotency-Key", "X-Request-Id", "webhook-id"])),
    st.tuples(st.just("drop-key"), st.just("")),
    st.tuples(st.just("body"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("method"), st.sampled_from(["PUT", "PATCH"])),
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    order=st.integers(min_value=1, max_value=10**9),
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    mutation=mutations,
)
def test_no_mutation_of_a_signed_request_creates_a_run(
    served: tuple[FunctionProcess, FakeAirflow], path: str, order: int, key: str, mutation: tuple[str, str]
) -> None:
    fn, airflow = served
    captured = webhook_request(fn.url, {"order": order}, path, SECRET, key)
    headers = dict(captured.headers)
    status = _post(fn, path, headers, captured.body)
    assert status == 200
    before = set(airflow.runs)
    what, value = mutation
    target, body, method = path, captured.body, "POST"
    if what == "path":
        target = value
    elif what == "query":
        target = path + value
    elif what == "key":
        headers["Idempotency-Key"] = value
    elif what == "add-header":
        headers[value] = "attacker-chosen"
    elif what == "drop-key":
        headers.pop("Idempotency-Key")
    elif what == "body":
        body = captured.body + value
    elif what == "method":
        method = value
    answer = _post(fn, target, headers, body, method)
    assert answer < 500
    assert set(airflow.runs) == before, (mutation, answer, set(airflow.runs) - before)


def test_the_fuzzer_can_see_a_run(served: tuple[FunctionProcess, FakeAirflow], tmp_path: Path) -> None:
    """The property above means something only if a fresh signed request does create a run."""
    fn, airflow = served
    before = len(airflow.runs)
    out = webhook_request(fn.url, {"order": -1}, "/shop", SECRET, "fresh-key-for-the-control")
    assert _post(fn, "/shop", dict(out.headers), out.body) == 200
    assert len(airflow.runs) == before + 1


std_mutations = st.one_of(
    st.tuples(st.just("path"), st.sampled_from(["/std/", "/stdX", "/std/dags/shop_refunds", "/shop", "/batched",
                                                "/std?dag_id=shop_refunds", "/%73td", "/std/a/b"])),
    st.tuples(st.just("webhook-id"), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                                             max_size=20)),
    st.tuples(st.just("webhook-timestamp"), st.integers(min_value=-400, max_value=400).map(str)),
    st.tuples(st.just("body"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("drop"), st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"])),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.integers(min_value=1, max_value=10**9),
    message_id=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    mutation=std_mutations,
)
def test_no_mutation_of_a_standard_webhooks_request_creates_a_run(
    served: tuple[FunctionProcess, FakeAirflow], order: int, message_id: str, mutation: tuple[str, str]
) -> None:
    fn, airflow = served
    captured = webhook_request(fn.url, {"order": order}, "/std", STD, message_id, scheme="standard-webhooks")
    headers = dict(captured.headers)
    assert _post(fn, "/std", headers, captured.body) == 200
    before = set(airflow.runs)
    what, value = mutation
    target, body = "/std", captured.body
    if what == "path":
        target = value
    elif what == "webhook-id":
        headers["webhook-id"] = value
    elif what == "webhook-timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) + int(value))
    elif what == "body":
        body = captured.body + value
    elif what == "drop":
        headers.pop(value)
    answer = _post(fn, target, headers, body)
    assert answer < 500
    assert set(airflow.runs) == before, (mutation, answer, set(airflow.runs) - before)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionProcess, FakeAirflow]]:
    workdir = tmp_path_factory.mktemp("relay")
    routes = workdir / "routes.json"
    landing = {"name": "landing", "dag_id": "landing_files", "match": {"kind": "storage", "bucket": "landing"}}
    anything = {"name": "uploads", "dag_id": "all_uploads", "match": {"kind": "storage"}}
    routes.write_text(json.dumps({"routes": [landing, anything], "notifications": {"landing": CHANNEL}}))
    with FakeAirflow("v2") as airflow, FunctionProcess("trigger_event", event_env(airflow.url, routes), workdir) as fn:
        yield fn, airflow


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    topic=st.sampled_from(["gcs-landing", "gcs-other", "orders"]),
    attribute_bucket=st.sampled_from(["landing", "secret-bucket", ""]),
    payload_bucket=st.sampled_from(["landing", "secret-bucket", None]),
    event_type=st.sampled_from(["OBJECT_FINALIZE", "OBJECT_DELETE", "OBJECT_X"]),
    message_id=st.integers(min_value=1, max_value=10**12).map(str),
)
def test_only_a_declared_channel_relays_storage_events(
    relay: tuple[FunctionProcess, FakeAirflow],
    topic: str,
    attribute_bucket: str,
    payload_bucket: str | None,
    event_type: str,
    message_id: str,
) -> None:
    fn, airflow = relay
    resource: dict[str, object] = dict(storage_data(bucket=payload_bucket or "landing", name="f/a.csv"))
    if payload_bucket is None:
        resource.pop("bucket")
    attributes = {"eventType": event_type, "bucketId": attribute_bucket, "objectId": "f/a.csv",
                  "objectGeneration": str(resource["generation"]), "payloadFormat": "JSON_API_V1"}  # fmt: skip
    message = pubsub_data(json.dumps(resource).encode(), message_id=message_id, attributes=attributes)
    airflow.runs.clear()
    reply = fn.send_event(pubsub_attrs(topic=topic, message_id=message_id), message)
    assert reply.status_code == 200, reply.text
    relayed = (
        topic == "gcs-landing"
        and attribute_bucket == "landing"
        and payload_bucket in ("landing", None)
        and event_type == "OBJECT_FINALIZE"
    )
    storage_runs = [run_id for _, run_id in airflow.runs if run_id.startswith("gcs_")]
    assert bool(storage_runs) is relayed, (topic, attribute_bucket, payload_bucket, event_type, sorted(airflow.runs))
