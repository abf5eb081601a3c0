"""Issue 16, findings 7 and 11: what a signature covers must be unambiguous, and its key must be a key.

7. The path was signed percent-decoded: a request signed for ``/shop?note=/dags/shop_refunds`` (path ``/shop``, query
   ``note=/dags/shop_refunds``) replayed to ``/shop%3Fnote=/dags/shop_refunds`` had the same canonical form and
   created a run on ``shop_refunds``. A decoded path holding ``?``, ``#`` or control characters is now refused.
11. A Standard Webhooks secret with no base64 characters decoded to an empty key, and requests signed with
   HMAC(empty key) were accepted. Keys under 16 decoded bytes now stop start-up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagtrigger.signature import HEADER, SignedRequest, sign, sign_standard
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import SECRET, webhook_env

pytestmark = pytest.mark.integration


def test_an_encoded_question_mark_does_not_move_the_query_into_the_path(
    webhook_function: FunctionProcess, airflow: FakeAirflow
) -> None:
    body = json.dumps({"order": 1}).encode()
    signature = sign(SECRET, SignedRequest("POST", "/shop", "note=/dags/shop_refunds", "k-7", body))
    headers = {"Content-Type": "application/json", "Idempotency-Key": "k-7", HEADER: signature}
    for target in ("/shop%3Fnote=/dags/shop_refunds", "/shop%3fnote=/dags/shop_refunds"):
        reply = webhook_function.session.post(webhook_function.url + target, headers=headers, data=body, timeout=30)
        assert reply.status_code in (400, 401), reply.text
    assert airflow.runs == {}
    genuine = webhook_function.session.post(
        webhook_function.url + "/shop?note=/dags/shop_refunds", headers=headers, data=body, timeout=30
    )
    assert genuine.status_code == 200, genuine.text  # the request as signed still works
    assert [dag for dag, _ in airflow.runs] == ["shop_orders"]


@pytest.mark.parametrize("secret", ["!!!!!!!!!!!!!!!!!!!!", "whsec_----------------", "whsec_QUJD" + "." * 20])
def test_a_standard_webhooks_secret_that_decodes_to_a_short_key_does_not_start(
    airflow: FakeAirflow, tmp_path: Path, secret: str
) -> None:
    routes = tmp_path / "routes.json"
    route = {"name": "std", "dag_id": "std_dag", "webhook": {"scheme": "standard-webhooks", "secrets": "STD_SECRET"}}
    routes.write_text(json.dumps({"routes": [route]}))
    fn = FunctionProcess("trigger_http", webhook_env(airflow.url, routes, STD_SECRET=secret), tmp_path)
    try:
        fn.start()
    except RuntimeError as exc:
        assert "STD_SECRET" in str(exc) and "16" in str(exc)
        return
    try:  # today: it starts, and a request signed with HMAC(empty key) is accepted
        body = b'{"a": 1}'
        headers = {"Content-Type": "application/json", **sign_standard("", "msg-1", body)}
        reply = fn.session.post(fn.url + "/", headers=headers, data=body, timeout=30)
        assert reply.status_code == 401, reply.text
        pytest.fail("a Standard Webhooks secret of no key bytes must stop start-up")
    finally:
        fn.stop()
