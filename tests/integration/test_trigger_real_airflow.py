"""End to end: CloudEvents and webhooks into a real functions-framework process, runs read back from real Airflow."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dagtrigger import events
from dagtrigger.conf import RESERVED_KEY
from dagtrigger.run_id import RUN_ID_PATTERN, run_id_for
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.support.fakes import Answer, FakeServer
from tests.support.function_env import function_env
from tests.support.oidc import AUDIENCE, GOOGLE_PUBLIC, PUSHER, token
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

pytestmark = pytest.mark.integration
DAG = "dagtrigger_example"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("function")


@pytest.fixture(scope="module")
def _event_function(airflow: AirflowServer, workdir: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_event", function_env(airflow), workdir) as process:
        yield process


@pytest.fixture
def function(_event_function: FunctionProcess) -> FunctionProcess:
    """One process per Airflow server, shared by tests; each test sees only its own log lines."""
    _event_function.mark()
    return _event_function


def storage(name: str, generation: str = "1764000000000001", **attrs: str) -> tuple[dict[str, str], dict[str, str]]:
    ce = storage_attrs(name=name, datacontenttype="application/json", **attrs)
    return ce, storage_data(name=name, generation=generation)


def expected_run_id(ce: dict[str, str], data: dict[str, str]) -> str:
    return run_id_for(events.from_cloud_event(ce, data))


def test_storage_finalize_creates_one_run_with_the_object_as_conf(
    airflow: AirflowServer, function: FunctionProcess
) -> None:
    ce, data = storage(f"landing/2026-11-24/orders-{airflow.major}.csv")
    response = function.send_event(ce, data)
    assert response.status_code == 200, response.text
    run = airflow.get_run(DAG, expected_run_id(ce, data))
    assert run is not None
    conf = run["conf"]
    for key in ("bucket", "name", "generation", "contentType", "metadata", "size"):
        assert conf[key] == data[key]
    assert conf[RESERVED_KEY]["id"] == ce["id"] and conf[RESERVED_KEY]["type"] == ce["type"]
    assert run["state"] == "queued"
    entry = next(e for e in function.logs() if e.get("outcome") == "done")
    assert entry["run_id"] == run["dag_run_id"] and entry["dag_id"] == DAG and entry["event_id"] == ce["id"]


def test_redelivery_with_a_new_event_id_gives_one_run(airflow: AirflowServer, function: FunctionProcess) -> None:
    ce, data = storage(f"redelivered-{airflow.major}.csv")
    assert function.send_event(ce, data).status_code == 200
    again = {**ce, "id": "a-new-delivery-id"}
    assert function.send_event(again, data).status_code == 200
    runs = [r for r in airflow.list_runs(DAG) if r["dag_run_id"] == expected_run_id(ce, data)]
    assert len(runs) == 1
    assert [e["outcome"] for e in function.logs() if e.get("outcome")][-2:] == ["done", "duplicate"]


def test_concurrent_duplicate_deliveries_give_one_run(airflow: AirflowServer, function: FunctionProcess) -> None:
    ce, data = storage(f"raced-{airflow.major}.csv")
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda n: function.send_event({**ce, "id": f"d{n}"}, data).status_code, range(8)))
    assert codes == [200] * 8, function.output()[-4000:]
    assert [r["dag_run_id"] for r in airflow.list_runs(DAG)].count(expected_run_id(ce, data)) == 1


def test_overwrite_is_a_new_run(airflow: AirflowServer, function: FunctionProcess) -> None:
    name = f"overwritten-{airflow.major}.csv"
    first, second = storage(name, "100"), storage(name, "200")
    assert function.send_event(*first).status_code == 200
    assert function.send_event(*second).status_code == 200
    ids = {r["dag_run_id"] for r in airflow.list_runs(DAG)}
    assert {expected_run_id(*first), expected_run_id(*second)} <= ids


@pytest.mark.parametrize(
    "name",
    [
        "données/été 2026/rapport (final) #1.csv",
        "a/b/c/" * 60 + "deep.parquet",
        "with+plus&amp=eq?q.txt",
        "数据/文件.json",
    ],
)
def test_odd_object_names(airflow: AirflowServer, function: FunctionProcess, name: str) -> None:
    ce, data = storage(name)
    assert function.send_event(ce, data).status_code == 200
    run_id = expected_run_id(ce, data)
    assert RUN_ID_PATTERN.fullmatch(run_id)
    run = airflow.get_run(DAG, run_id)
    assert run is not None and run["conf"]["name"] == name


def test_pubsub_json_message(airflow: AirflowServer, function: FunctionProcess) -> None:
    message_id = f"5550{airflow.major}001"
    payload = json.dumps({"table": "orders", "rows": 42, "note": "ünïcode"}).encode()
    ce = pubsub_attrs(message_id=message_id, datacontenttype="application/json")
    response = function.send_event(ce, pubsub_data(payload, message_id=message_id, attributes={"origin": "erp"}))
    assert response.status_code == 200, response.text
    run = airflow.get_run(DAG, expected_run_id(ce, pubsub_data(payload, message_id=message_id)))
    assert run is not None
    conf = run["conf"]
    assert (conf["table"], conf["rows"], conf["note"]) == ("orders", 42, "ünïcode")
    assert conf[RESERVED_KEY]["attributes"] == {"origin": "erp"}
    assert conf[RESERVED_KEY]["message_id"] == message_id
    assert conf[RESERVED_KEY]["publish_time"]


def test_pubsub_binary_message_is_kept_as_base64(airflow: AirflowServer, function: FunctionProcess) -> None:
    message_id = f"5550{airflow.major}002"
    payload = bytes(range(256))
    ce = pubsub_attrs(message_id=message_id, datacontenttype="application/json")
    data = pubsub_data(payload, message_id=message_id)
    assert function.send_event(ce, data).status_code == 200
    run = airflow.get_run(DAG, expected_run_id(ce, data))
    assert run is not None and base64.b64decode(run["conf"]["data_base64"]) == payload


def test_missing_dag_is_acknowledged_with_an_error_log(airflow: AirflowServer, workdir: Path) -> None:
    env = function_env(airflow, DAG_ID="no_such_dag")
    with FunctionProcess("trigger_event", env, workdir) as function:
        response = function.send_event(*storage(f"orphan-{airflow.major}.csv"))
        assert response.status_code == 200
        entry = next(e for e in function.logs() if e.get("outcome") == "failed")
    assert entry["severity"] == "ERROR" and entry["status"] == 404 and "no_such_dag" in entry["message"]


def test_viewer_role_is_refused_and_redelivered_with_the_fix(airflow: AirflowServer, workdir: Path) -> None:
    env = function_env(airflow, user="viewer")
    with FunctionProcess("trigger_event", env, workdir) as function:
        ce, data = storage(f"forbidden-{airflow.major}.csv")
        response = function.send_event(ce, data)
        output = function.output()
        entry = next(e for e in function.logs() if e.get("outcome") == "retry")
    assert response.status_code == 503
    assert entry["status"] == 403 and "Op role" in entry["message"]
    assert airflow.get_run(DAG, expected_run_id(ce, data)) is None
    assert "viewer:viewer" not in output and "dmlld2VyOnZpZXdlcg" not in output  # basic credentials, base64


def test_airflow_down_means_redeliver_then_exactly_one_run(airflow: AirflowServer, function: FunctionProcess) -> None:
    ce, data = storage(f"outage-{airflow.major}.csv")
    airflow.stop()
    try:
        response = function.send_event(ce, data)
        assert response.status_code == 503
        assert response.json()["outcome"] == "retry"
    finally:
        airflow.start()
    assert function.send_event(ce, data).status_code == 200
    assert function.send_event(ce, data).status_code == 200
    assert [r["dag_run_id"] for r in airflow.list_runs(DAG)].count(expected_run_id(ce, data)) == 1


def test_malformed_event_is_rejected_with_a_reason(function: FunctionProcess) -> None:
    ce, data = storage("no-generation.csv")
    del data["generation"]
    response = function.send_event(ce, data)
    assert response.status_code == 400
    assert "generation" in response.json()["error"]


def test_unknown_event_type_is_acknowledged(function: FunctionProcess) -> None:
    ce, data = storage("whatever.csv", type="com.example.unknown.v1")
    assert function.send_event(ce, data).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome") == "ignored")
    assert entry["severity"] == "WARNING" and "com.example.unknown.v1" in entry["message"]


def test_deleted_object_is_ignored_by_default(function: FunctionProcess) -> None:
    ce, data = storage("gone.csv", type="google.cloud.storage.object.v1.deleted")
    assert function.send_event(ce, data).status_code == 200
    entry = next(e for e in function.logs() if e.get("outcome") == "ignored")
    assert entry["severity"] == "INFO" and "deleted" in entry["message"]


@pytest.fixture(scope="module")
def webhook(airflow: AirflowServer, workdir: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_http", function_env(airflow, WEBHOOK_AUTH="cloud-run-iam"), workdir) as process:
        yield process


def test_webhook_json_becomes_the_conf(airflow: AirflowServer, webhook: FunctionProcess) -> None:
    key = f"order-42-{airflow.major}"
    body = {"order": 42, "items": ["a", "b"]}
    first = webhook.post("/", json=body, headers={"Idempotency-Key": key})
    again = webhook.post("/", json=body, headers={"Idempotency-Key": key})
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["outcome"], again.json()["outcome"]) == ("done", "duplicate")
    run_id = first.json()["runs"][0]["run_id"]
    run = airflow.get_run(DAG, run_id)
    assert run is not None and run["conf"]["order"] == 42 and run["conf"]["items"] == ["a", "b"]


def test_webhook_bad_json_is_400(webhook: FunctionProcess) -> None:
    response = webhook.post("/", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    assert webhook.post("/", json=[1, 2]).status_code == 400
    assert webhook.session.get(webhook.url).status_code == 405


def test_pubsub_push_on_the_push_entry_point(airflow: AirflowServer, workdir: Path) -> None:
    message_id = f"7770{airflow.major}001"
    envelope = pubsub_data(b'{"from": "push"}', message_id=message_id)
    with FakeServer(lambda seen: Answer(200, {"k1": GOOGLE_PUBLIC})) as certs:
        env = function_env(
            airflow, PUSH_AUDIENCE=AUDIENCE, PUSH_SERVICE_ACCOUNTS=PUSHER, PUSH_CERTS_URL=certs.url + "/certs"
        )
        with FunctionProcess("trigger_push", env, workdir, signature="http") as push:
            response = push.post("/", json=envelope, headers={"Authorization": f"Bearer {token()}"})
            refused = push.post("/", json=envelope)
    assert refused.status_code == 401
    assert response.status_code == 200, response.text
    run = airflow.get_run(DAG, response.json()["runs"][0]["run_id"])
    assert run is not None and run["conf"]["from"] == "push"
    assert run["conf"][RESERVED_KEY]["subscription"] == envelope["subscription"]
