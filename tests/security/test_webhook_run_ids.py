"""Issue 16, finding 5: one sender could pre-empt another route's run ids.

Route ``shop`` (its own secret, ``allow_dags: [shop_refunds]``) posted ``/shop/dags/shop_refunds`` with
``Idempotency-Key: refund-1001``; the refunds route's genuine ``refund-1001`` then got ``duplicate`` and the only run
held the first sender's conf. Webhook run ids are now scoped to the route that authenticated them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import webhook_env

pytestmark = pytest.mark.integration
SHOP, REFUNDS = "shop-secret-0123456789abcdef", "refunds-secret-0123456789abcdef"
ROUTES = {
    "routes": [
        {
            "name": "shop",
            "dag_id": "shop_orders",
            "allow_dags": ["shop_refunds"],
            "match": {"kind": "webhook", "path": {"prefix": "/shop"}},
            "webhook": {"secrets": "SHOP_SECRET"},
        },
        {
            "name": "refunds",
            "dag_id": "shop_refunds",
            "match": {"kind": "webhook", "path": {"prefix": "/refunds"}},
            "webhook": {"secrets": "REFUNDS_SECRET"},
        },
    ]
}


def test_a_key_sent_through_one_route_does_not_take_another_routes_run(airflow: FakeAirflow, tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    env = webhook_env(airflow.url, routes, SHOP_SECRET=SHOP, REFUNDS_SECRET=REFUNDS)
    with FunctionProcess("trigger_http", env, tmp_path) as fn:
        first = webhook_request(fn.url, {"amount": 999999}, "/shop/dags/shop_refunds", SHOP, "refund-1001")
        reply = fn.session.post(first.url, headers=dict(first.headers), data=first.body, timeout=30)
        assert reply.status_code == 200, reply.text
        genuine = webhook_request(fn.url, {"amount": 10}, "/refunds", REFUNDS, "refund-1001")
        reply = fn.session.post(genuine.url, headers=dict(genuine.headers), data=genuine.body, timeout=30)
        assert reply.status_code == 200, reply.text
        assert reply.json()["outcome"] == "done", reply.json()
    refunds = {run_id: body["conf"]["amount"] for (dag, run_id), body in airflow.runs.items() if dag == "shop_refunds"}
    assert sorted(refunds.values()) == [10, 999999], refunds
