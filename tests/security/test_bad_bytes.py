"""Findings 6, 7 and 8: hostile bytes are a 4xx with a reason, before any work; patterns are full matches."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration  # starts real function processes

HOSTILE_BODIES = [b"[" * 100_000, b'{"a":' * 50_000, b'{"order": NaN}', b'{"order": Infinity}', b'{"x": 1e999}']


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=["brackets", "objects", "nan", "infinity", "overflow"])
def test_hostile_unsigned_bodies_are_401_without_a_traceback(
    webhook_function: FunctionProcess, airflow: FakeAirflow, body: bytes
) -> None:
    webhook_function.mark()
    reply = webhook_function.post("/shop", data=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 401, reply.text
    assert "Traceback" not in webhook_function.output()
    assert airflow.runs == {}


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=["brackets", "objects", "nan", "infinity", "overflow"])
def test_hostile_signed_bodies_are_4xx_not_retried(
    webhook_function: FunctionProcess, airflow: FakeAirflow, body: bytes
) -> None:
    out = webhook_request(webhook_function.url, {}, "/shop", SECRET, "k")
    # Re-sign the hostile bytes exactly as the sender would.
    signed = webhook_request(webhook_function.url, {}, "/shop", SECRET, "k")
    headers = dict(signed.headers)
    resigned = _resign(headers, body, out)
    webhook_function.mark()
    reply = webhook_function.session.post(out.url, headers=resigned, data=body, timeout=30)
    assert 400 <= reply.status_code < 500, reply.text
    answer = reply.json()
    assert answer["outcome"] == "rejected" and isinstance(answer["error"], str) and answer["error"].strip(), answer
    assert "Traceback" not in webhook_function.output()
    assert airflow.runs == {}


def _resign(headers: dict[str, str], body: bytes, out: object) -> dict[str, str]:
    from dagtrigger import send

    fresh = send.webhook_request("http://127.0.0.1", {}, "/shop", SECRET, "k")
    if hasattr(send, "sign_webhook"):
        return dict(send.sign_webhook(SECRET, "POST", "/shop", body, fresh.headers))
    import time

    t = int(time.time())
    digest = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return {**headers, "X-Dagtrigger-Signature": f"t={t},v1={digest}"}


BAD_HEADERS = [
    "t=１２３,v1=00",
    "t=" + "9" * 400 + ",v1=00",
    "t=" + "9" * 5000 + ",v1=00",
    "t=1700000000,v1=é",
    "t=1700000000,v2=é",
    "t=-1,v2=" + "0" * 64,
    "t=1700000000,v2=" + "g" * 64,
]


@pytest.mark.parametrize("value", BAD_HEADERS)
def test_malformed_signature_headers_are_401(
    webhook_function: FunctionProcess, airflow: FakeAirflow, value: str
) -> None:
    webhook_function.mark()
    reply = webhook_function.post(
        "/shop",
        data=b'{"a":1}',
        headers={"Content-Type": "application/json", "X-Dagtrigger-Signature": value.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert reply.status_code == 401, reply.text
    assert "Traceback" not in webhook_function.output()


def test_run_id_template_with_a_newline_is_squashed(airflow: FakeAirflow, tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {
                        "name": "orders",
                        "match": {"kind": "webhook"},
                        "dag_id": "orders",
                        "run_id": "order__{id}",
                    }
                ]
            }
        )
    )
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes), tmp_path) as fn:
        for value in ("123", "123\n"):
            out = webhook_request(fn.url, {"id": value}, "/", SECRET, f"k-{len(value)}")
            reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30)
            assert reply.status_code == 200, reply.text
    run_ids = [run_id for _, run_id in airflow.runs]
    assert all("\n" not in r for r in run_ids), run_ids
    assert run_ids == ["order__123"]


@pytest.mark.parametrize("dag_id", ["..", ".", "a\nb", "a/b"])
def test_impossible_dag_ids_stop_start_up(airflow: FakeAirflow, tmp_path: Path, dag_id: str) -> None:
    env = {
        "AIRFLOW_URI": airflow.url,
        "AIRFLOW_AUTH": "none",
        "DAG_ID": dag_id,
        "WEBHOOK_HMAC_SECRET": SECRET,
    }
    fn = FunctionProcess("trigger_http", env, tmp_path)
    with pytest.raises(RuntimeError, match="DAG_ID"):
        fn.start()
        fn.stop()
    assert airflow.runs == {}
