"""Issue 16, finding 13 (the parts fixed here): run-id templates that render ``.`` or ``..``, and push tokens naming
unknown key ids, each of which made the function fetch Google's certificates again under a process-wide lock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import Answer, FakeAirflow, FakeServer
from tests.support.oidc import AUDIENCE, GOOGLE_PUBLIC, PUSHER, token

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration


def test_a_run_id_template_never_renders_a_path_segment(airflow: FakeAirflow, tmp_path: Path) -> None:
    route = {"name": "t", "dag_id": "t_dag", "conf": {"x": "body.x"}, "run_id": "{x}"}
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [route]}))
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes), tmp_path) as fn:
        for i, value in enumerate((".", "..", "...")):
            out = webhook_request(fn.url, {"x": value}, "/", SECRET, f"dots-{i}")
            reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30)
            assert reply.status_code == 200, reply.text
    run_ids = [run_id for _, run_id in airflow.runs]
    assert len(run_ids) == 3 and all(run_id.strip(".") for run_id in run_ids), run_ids


def test_unknown_key_ids_do_not_each_refetch_the_certificates(airflow: FakeAirflow, tmp_path: Path) -> None:
    with FakeServer(lambda seen: Answer(200, {"k1": GOOGLE_PUBLIC})) as certs:
        env = {
            "AIRFLOW_URI": airflow.url,
            "AIRFLOW_API_VERSION": "v2",
            "AIRFLOW_AUTH": "none",
            "DAG_ID": "orders",
            "PUSH_AUDIENCE": AUDIENCE,
            "PUSH_SERVICE_ACCOUNTS": PUSHER,
            "PUSH_CERTS_URL": certs.url + "/oauth2/v1/certs",
        }
        with FunctionProcess("trigger_push", env, tmp_path, signature="http") as fn:
            for i in range(20):
                bearer = token(kid=f"unknown-{i}")
                reply = fn.post("/", data="{}", headers={"Authorization": f"Bearer {bearer}"})
                assert reply.status_code == 401, reply.text
        assert len(certs.seen) <= 2, len(certs.seen)
