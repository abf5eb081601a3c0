"""Findings 2 and 3: a webhook body is never read as a Pub/Sub push envelope or a Cloud Storage event."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration  # starts real function processes

NOTIFICATION = {
    "message": {
        "messageId": "4242",
        "data": base64.b64encode(json.dumps({"bucket": "secret-bucket", "name": "x/manifest.json"}).encode()).decode(),
        "attributes": {
            "eventType": "OBJECT_FINALIZE",
            "bucketId": "secret-bucket",
            "objectId": "x/manifest.json",
            "objectGeneration": "1",
            "payloadFormat": "JSON_API_V1",
        },
    },
    "subscription": "projects/p/subscriptions/s",
}


def test_unsigned_push_envelope_on_the_webhook_entry_point_is_refused(
    airflow: FakeAirflow, routes_file: Path, tmp_path: Path
) -> None:
    env = webhook_env(airflow.url, routes_file)
    with FunctionProcess("trigger_http", env, tmp_path) as fn:
        for body in (NOTIFICATION, {"message": {"messageId": "1", "data": ""}, "subscription": "s"}):
            reply = fn.post("/shop", json=body)
            assert reply.status_code == 401, reply.text
    assert airflow.runs == {}


def test_allow_unsigned_push_no_longer_opens_the_function(
    airflow: FakeAirflow, routes_file: Path, tmp_path: Path
) -> None:
    env = webhook_env(airflow.url, routes_file, ALLOW_UNSIGNED_PUSH="true")
    fn = FunctionProcess("trigger_http", env, tmp_path)
    with pytest.raises(RuntimeError, match="ALLOW_UNSIGNED_PUSH"):  # refused at start-up: the setting is gone
        fn.start()
    fn.stop()
    assert airflow.runs == {}


def test_a_signed_webhook_shaped_like_a_storage_notification_stays_a_webhook(
    webhook_function: FunctionProcess, airflow: FakeAirflow
) -> None:
    out = webhook_request(webhook_function.url, NOTIFICATION, "/shop", SECRET, "n-1")
    reply = webhook_function.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30)
    assert reply.status_code == 200, reply.text
    [(dag_id, run_id)] = list(airflow.runs)
    sent = airflow.runs[(dag_id, run_id)]
    assert sent["conf"]["_event"]["type"] == "dagtrigger.webhook.v1.received"
    assert run_id.startswith("webhook")
    assert sent["conf"]["message"] == NOTIFICATION["message"]
