"""Every way the same storage change can reach ``trigger_event`` yields the same run: binary and structured
CloudEvents, a legacy (gen-1 background) event converted by functions-framework, and a Cloud Storage notification
relayed through Pub/Sub. Airflow here is a fake (a local server answering 200, then 409 for a known run id)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

pytestmark = pytest.mark.integration
NAME = "incoming/2026 Q4/Überweisung #7.csv"
ROUTES = {
    "routes": [{"name": "landing", "dag_id": "d", "match": {"bucket": "landing"}}],
    "notifications": {"landing": "projects/example-project/topics/orders"},
}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[FakeAirflow, FunctionProcess]]:
    with FakeAirflow() as airflow:
        routes = tmp_path / "routes.json"  # relayed notifications need a route-named bucket and a declared channel
        routes.write_text(json.dumps(ROUTES))
        env = {"AIRFLOW_URI": airflow.url, "ROUTES_FILE": str(routes), "AIRFLOW_AUTH": "none"}
        with FunctionProcess("trigger_event", env, tmp_path) as function:
            yield airflow, function


def test_all_delivery_formats_of_one_object_version_make_one_run(setup: tuple[FakeAirflow, FunctionProcess]) -> None:
    airflow, function = setup
    data = storage_data(name=NAME)
    attrs = storage_attrs(name=NAME, datacontenttype="application/json")
    assert function.send_event(attrs, data).status_code == 200
    assert function.send_event({**attrs, "id": "structured"}, data, structured=True).status_code == 200
    legacy = {
        "context": {
            "eventId": "legacy-1",
            "timestamp": attrs["time"],
            "eventType": "google.storage.object.finalize",
            "resource": {"service": "storage.googleapis.com", "name": f"projects/_/buckets/landing/objects/{NAME}"},
        },
        "data": data,
    }
    assert function.post("/", json=legacy).status_code == 200
    notification = {
        "bucketId": "landing",
        "objectId": NAME,
        "eventType": "OBJECT_FINALIZE",
        "objectGeneration": data["generation"],
        "payloadFormat": "JSON_API_V1",
    }
    relayed = pubsub_data(json.dumps(data).encode(), message_id="4242", attributes=notification)
    assert function.send_event(pubsub_attrs(message_id="4242"), relayed).status_code == 200
    assert len(airflow.runs) == 1
    (body,) = airflow.runs.values()
    assert body["conf"]["name"] == NAME
    outcomes = [e["outcome"] for e in function.logs() if e.get("outcome")]
    assert outcomes == ["done", "duplicate", "duplicate", "duplicate"]


def test_binary_mode_ce_headers_are_percent_decoded(setup: tuple[FakeAirflow, FunctionProcess]) -> None:
    """The HTTP binding percent-encodes ce-* values (send_event does, as Eventarc may); the SDK leaves them encoded."""
    airflow, function = setup
    attrs = storage_attrs(name=NAME, datacontenttype="application/json")
    assert function.send_event(attrs, storage_data(name=NAME)).status_code == 200
    [body] = airflow.runs.values()
    assert body["conf"]["_event"]["subject"] == f"objects/{NAME}"


def test_structured_mode_attributes_are_taken_literally(setup: tuple[FakeAirflow, FunctionProcess]) -> None:
    airflow, function = setup
    name = "reports/100%25 done.csv"  # a literal '%25' in the name: structured mode carries it as JSON, unencoded
    attrs = storage_attrs(name=name, datacontenttype="application/json")
    assert function.send_event(attrs, storage_data(name=name), structured=True).status_code == 200
    [body] = airflow.runs.values()
    assert body["conf"]["_event"]["subject"] == f"objects/{name}"
