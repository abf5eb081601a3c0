"""Issue 16, finding 3: any Pub/Sub publisher could forge Cloud Storage events.

A message whose attributes imitate a storage notification (``eventType``, ``bucketId``, ``objectId``) became a
storage event for whatever bucket it named: it matched storage routes, took over the run id of a real upload, made
the function read a manifest in that bucket with its own credentials, and chose its batch window (``eventTime``). Now
a relayed notification is accepted only from the channel (topic or push subscription) the routing file declares for
that bucket, only for buckets a route names, and only when its attributes and payload agree; a manifest's default
bucket must be one its route names. Anything else stays the Pub/Sub message it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_data

from .harness import event_env

pytestmark = pytest.mark.integration

CHANNEL = "projects/example-project/topics/gcs-landing"
ROUTES = {
    "routes": [
        {"name": "landing", "dag_id": "landing_files", "match": {"kind": "storage", "bucket": "landing"}},
        {"name": "anything", "dag_id": "all_uploads", "match": {"kind": "storage", "name": {"suffix": ".csv"}}},
    ]
}


def _notification(bucket: str, name: str, message_id: str, **over: str) -> dict[str, object]:
    resource = {**storage_data(bucket=bucket, name=name), "mediaLink": "https://attacker.example/x"}
    attributes = {
        "eventType": "OBJECT_FINALIZE",
        "bucketId": bucket,
        "objectId": name,
        "objectGeneration": str(resource["generation"]),
        "payloadFormat": "JSON_API_V1",
        "eventTime": "2026-11-24T10:00:00Z",
        **over,
    }
    return pubsub_data(json.dumps(resource).encode(), message_id=message_id, attributes=attributes)


def _serve(tmp_path: Path, airflow: FakeAirflow, routes: dict[str, object]) -> FunctionProcess:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(routes))
    return FunctionProcess("trigger_event", event_env(airflow.url, path), tmp_path)


def test_a_forged_notification_on_any_topic_is_no_storage_event(airflow: FakeAirflow, tmp_path: Path) -> None:
    with _serve(tmp_path, airflow, ROUTES) as fn:
        for i, bucket in enumerate(("landing", "secret-bucket")):
            forged = _notification(bucket, "hr/salaries.csv", f"66{i}")
            reply = fn.send_event(pubsub_attrs(topic="anyone-can-publish", message_id=f"66{i}"), forged)
            assert reply.status_code == 200, reply.text
    assert airflow.runs == {}, sorted(airflow.runs)


def test_only_the_declared_channel_of_a_route_named_bucket_relays(airflow: FakeAirflow, tmp_path: Path) -> None:
    routes = {**ROUTES, "notifications": {"landing": CHANNEL}}
    with _serve(tmp_path, airflow, routes) as fn:
        genuine = _notification("landing", "a/b.csv", "7001")
        assert fn.send_event(pubsub_attrs(topic="gcs-landing", message_id="7001"), genuine).status_code == 200
        assert sorted(dag for dag, _ in airflow.runs) == ["all_uploads", "landing_files"]
        airflow.runs.clear()
        attempts = [
            ("other-topic", _notification("landing", "a/c.csv", "7002")),  # not the declared channel
            ("gcs-landing", _notification("secret-bucket", "a/d.csv", "7003")),  # the channel of another bucket
            ("gcs-landing", _notification("landing", "a/e.csv", "7004", bucketId="secret-bucket")),  # disagreeing
        ]
        for topic, message in attempts:
            message_id = message["message"]["messageId"]  # type: ignore[index]
            reply = fn.send_event(pubsub_attrs(topic=topic, message_id=message_id), message)
            assert reply.status_code == 200, reply.text
    assert airflow.runs == {}, sorted(airflow.runs)


@pytest.mark.parametrize(
    "routes",
    [
        {"routes": [{"name": "m", "dag_id": "d", "match": {"kind": "storage"}, "manifest": {"object": "'m.json'"}}]},
        {"routes": [{"name": "r", "dag_id": "d"}], "notifications": {"landing": CHANNEL}},
    ],
    ids=["manifest-in-the-events-bucket", "channel-for-a-bucket-no-route-names"],
)
def test_configurations_that_let_an_event_choose_a_bucket_do_not_start(
    airflow: FakeAirflow, tmp_path: Path, routes: dict[str, object]
) -> None:
    fn = _serve(tmp_path, airflow, routes)
    with pytest.raises(RuntimeError, match="ROUTES_FILE"):
        fn.start()
        fn.stop()
