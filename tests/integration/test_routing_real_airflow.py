"""Routing against real Airflow: fan-out, markers, placeholders, Pub/Sub attributes, relayed GCS notifications,
signed webhooks — through real functions-framework processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from dagtrigger.signature import HEADER, SignedRequest, sign
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.support.function_env import function_env
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

pytestmark = pytest.mark.integration
EXAMPLE, OTHER = "dagtrigger_example", "dagtrigger_other"
SECRET = "integration-webhook-secret-0123456789"

ROUTES = """
routes:
  - name: csv-load
    dag_id: dagtrigger_example
    match: {kind: storage, bucket: landing, name: {suffix: .csv}}
    conf: {folder: dirname(name), date: path_date(name), uri: uri}
  - name: orders-audit
    dag_id: dagtrigger_other
    match: {kind: storage, name: {prefix: orders/}}
  - name: batch-done
    dag_id: dagtrigger_other
    marker: _SUCCESS
    conf_base: none
    conf: {folder: folder, uri: folder_uri}
  - name: pubsub-orders
    dag_id: dagtrigger_example
    match: {kind: pubsub, attributes: {type: order}}
    conf: {table: body.table, origin: attributes.origin}
  - name: hooks
    dag_id: dagtrigger_example
    allow_dags: [dagtrigger_example]
    match: {kind: webhook}
notifications:                      # Cloud Storage notifications for landing are relayed only through this topic
  landing: projects/example-project/topics/orders
"""


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routes") / "routes.yaml"
    path.write_text(ROUTES)
    return path


def env(airflow: AirflowServer, routes_file: Path) -> dict[str, str]:
    base = function_env(airflow, ROUTES_FILE=str(routes_file), WEBHOOK_HMAC_SECRET=SECRET)
    del base["DAG_ID"]
    return base


@pytest.fixture(scope="module")
def _events(airflow: AirflowServer, routes_file: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with FunctionProcess("trigger_event", env(airflow, routes_file), tmp_path_factory.mktemp("fn")) as process:
        yield process


@pytest.fixture
def function(_events: FunctionProcess) -> FunctionProcess:
    _events.mark()
    return _events


@pytest.fixture(scope="module")
def webhook(
    airflow: AirflowServer, routes_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_http", env(airflow, routes_file), tmp_path_factory.mktemp("hook")) as process:
        yield process


def upload(name: str, generation: str = "1764000000000777") -> tuple[dict[str, Any], dict[str, Any]]:
    ce = storage_attrs(name=name, datacontenttype="application/json")
    return ce, storage_data(name=name, generation=generation)


def runs_for(airflow: AirflowServer, dag_id: str, needle: str) -> list[dict[str, Any]]:
    return [r for r in airflow.list_runs(dag_id) if needle in json.dumps(r["conf"])]


def test_one_upload_fans_out_to_two_dags_each_once(airflow: AirflowServer, function: FunctionProcess) -> None:
    name = f"orders/dt=2026-11-24/fanout-{airflow.major}.csv"
    ce, data = upload(name)
    assert function.send_event(ce, data).status_code == 200
    assert function.send_event({**ce, "id": "redelivered"}, data).status_code == 200
    (load,) = runs_for(airflow, EXAMPLE, name)
    (audit,) = runs_for(airflow, OTHER, name)
    assert load["conf"]["folder"] == "orders/dt=2026-11-24"
    assert load["conf"]["date"] == "2026-11-24"
    assert load["conf"]["uri"] == f"gs://landing/{name}"
    assert load["conf"]["_event"]["route"] == "csv-load" and audit["conf"]["_event"]["route"] == "orders-audit"
    outcomes = sorted(e["outcome"] for e in function.logs() if e.get("outcome"))
    assert outcomes == ["done", "done", "duplicate", "duplicate"]


def test_marker_triggers_once_with_the_folder(airflow: AirflowServer, function: FunctionProcess) -> None:
    folder = f"exports/run-{airflow.major}/dt=2026-11-24"
    assert function.send_event(*upload(f"{folder}/part-00000.parquet")).status_code == 200
    assert not runs_for(airflow, OTHER, folder)
    marker = upload(f"{folder}/_SUCCESS")
    assert function.send_event(*marker).status_code == 200
    assert function.send_event({**marker[0], "id": "again"}, marker[1]).status_code == 200
    (run,) = runs_for(airflow, OTHER, folder)
    assert run["conf"]["folder"] == folder and run["conf"]["uri"] == f"gs://landing/{folder}/"
    assert "bucket" not in run["conf"]  # conf_base: none


def test_placeholder_triggers_nothing(airflow: AirflowServer, function: FunctionProcess) -> None:
    name = f"orders/placeholder-{airflow.major}/"
    assert function.send_event(*upload(name)).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome") == "ignored")
    assert "folder placeholder" in entry["message"] and entry["severity"] == "INFO"
    assert not runs_for(airflow, EXAMPLE, name) and not runs_for(airflow, OTHER, name)


def test_unmatched_event_says_why(function: FunctionProcess) -> None:
    assert function.send_event(*upload("misc/readme.txt")).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome") == "ignored")
    assert (
        "matched no route" in entry["message"]
        and "route 'csv-load': object name does not end with .csv" in (entry["message"])
    )


def test_pubsub_routes_by_attribute(airflow: AirflowServer, function: FunctionProcess) -> None:
    order_id, refund_id = f"88{airflow.major}0001", f"88{airflow.major}0002"
    payload = json.dumps({"table": f"orders_{airflow.major}"}).encode()
    order = pubsub_data(payload, message_id=order_id, attributes={"type": "order", "origin": "erp"})
    refund = pubsub_data(payload, message_id=refund_id, attributes={"type": "refund"})
    attrs = {"datacontenttype": "application/json"}
    assert function.send_event(pubsub_attrs(message_id=order_id, **attrs), order).status_code == 200
    assert function.send_event(pubsub_attrs(message_id=refund_id, **attrs), refund).status_code == 200
    (run,) = runs_for(airflow, EXAMPLE, order_id)
    assert run["conf"]["table"] == f"orders_{airflow.major}" and run["conf"]["origin"] == "erp"
    assert not runs_for(airflow, EXAMPLE, refund_id)


def test_gcs_notification_via_pubsub_matches_the_direct_event(
    airflow: AirflowServer, function: FunctionProcess
) -> None:
    name = f"orders/relayed-{airflow.major}.csv"
    ce, data = upload(name, generation="1764000000000999")
    assert function.send_event(ce, data).status_code == 200
    attributes = {
        "bucketId": "landing",
        "objectId": name,
        "eventType": "OBJECT_FINALIZE",
        "objectGeneration": data["generation"],
        "payloadFormat": "JSON_API_V1",
    }
    relayed = pubsub_data(json.dumps(data).encode(), message_id=f"99{airflow.major}01", attributes=attributes)
    response = function.send_event(pubsub_attrs(message_id=f"99{airflow.major}01"), relayed)
    assert response.status_code == 200
    assert len(runs_for(airflow, EXAMPLE, name)) == 1 and len(runs_for(airflow, OTHER, name)) == 1
    assert [e["outcome"] for e in function.logs() if e.get("outcome")] == ["done", "done", "duplicate", "duplicate"]


def signed_post(webhook: FunctionProcess, path: str, body: dict[str, Any], secret: str = SECRET):  # type: ignore[no-untyped-def]
    raw = json.dumps(body).encode()
    signature = sign(secret, SignedRequest("POST", unquote(path), "", "", raw))
    return webhook.post(path, data=raw, headers={"Content-Type": "application/json", HEADER: signature})


def test_signed_webhook_triggers_and_unsigned_is_refused(airflow: AirflowServer, webhook: FunctionProcess) -> None:
    body = {"order": f"signed-{airflow.major}"}
    response = signed_post(webhook, "/", body)
    assert response.status_code == 200, response.text
    assert len(runs_for(airflow, EXAMPLE, f"signed-{airflow.major}")) == 1
    unsigned = webhook.post("/", json={"order": f"unsigned-{airflow.major}"})
    assert unsigned.status_code == 401 and "requires signed webhooks" in unsigned.json()["error"]
    wrong = signed_post(webhook, "/", {"order": f"wrong-{airflow.major}"}, secret="not-the-secret-at-all")
    assert wrong.status_code == 401 and "does not match" in wrong.json()["error"]
    # the refused bodies' own values: other tests in this session's Airflow name objects "…wrong-…" too
    refused = (
        json.dumps({"order": f"unsigned-{airflow.major}"})[1:-1],
        json.dumps({"order": f"wrong-{airflow.major}"})[1:-1],
    )
    assert not any(runs_for(airflow, EXAMPLE, needle) for needle in refused)
    assert SECRET not in webhook.output()


def test_webhook_dag_path_is_checked_against_the_allowlist(airflow: AirflowServer, webhook: FunctionProcess) -> None:
    allowed = signed_post(webhook, f"/dags/{EXAMPLE}", {"via": f"path-{airflow.major}"})
    assert allowed.status_code == 200 and allowed.json()["runs"][0]["dag_id"] == EXAMPLE
    forbidden = signed_post(webhook, f"/dags/{OTHER}", {"via": "forbidden"})
    assert forbidden.status_code == 403 and OTHER in forbidden.json()["error"]
    invalid = signed_post(webhook, "/dags/not%20a%20dag", {"via": "invalid"})
    assert invalid.status_code == 404
    signature = sign(SECRET, SignedRequest("POST", "/", "", "", b"{oops"))
    malformed = webhook.post("/", data=b"{oops", headers={HEADER: signature})
    assert malformed.status_code == 400 and "JSON" in malformed.json()["error"]
