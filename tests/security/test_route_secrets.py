"""Per-route secrets, rotation and Standard Webhooks, against a real process: a secret opens only its own route."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

pytestmark = pytest.mark.integration  # starts real function processes

GLOBAL = "global-webhook-secret-0123456789"
SHOP_NEW = "shop-secret-new-0123456789abcdef"
SHOP_OLD = "shop-secret-old-0123456789abcdef"
BILLING = "whsec_" + base64.b64encode(b"billing-standard-webhooks-key-32").decode()
ROUTES = {
    "routes": [
        {
            "name": "shop",
            "dag_id": "shop_orders",
            "match": {"kind": "webhook", "path": {"prefix": "/shop"}},
            "webhook": {"secrets": ["SHOP_SECRET", "SHOP_SECRET_OLD"]},
        },
        {
            "name": "billing",
            "dag_id": "billing_events",
            "match": {"kind": "webhook", "path": {"prefix": "/billing"}},
            "webhook": {"scheme": "standard-webhooks", "secrets": ["BILLING_SECRET"]},
        },
        {"name": "misc", "dag_id": "misc", "match": {"kind": "webhook", "path": {"prefix": "/misc"}}},
    ]
}


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[FunctionProcess, FakeAirflow]]:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    with FakeAirflow("v2") as airflow:
        env = {
            "AIRFLOW_URI": airflow.url,
            "AIRFLOW_API_VERSION": "v2",
            "AIRFLOW_AUTH": "none",
            "ROUTES_FILE": str(routes),
            "WEBHOOK_HMAC_SECRET": GLOBAL,
            "SHOP_SECRET": SHOP_NEW,
            "SHOP_SECRET_OLD": SHOP_OLD,
            "BILLING_SECRET": BILLING,
        }
        with FunctionProcess("trigger_http", env, tmp_path) as fn:
            yield fn, airflow


def _send(fn: FunctionProcess, path: str, secret: str, key: str, scheme: str = "dagtrigger-v2") -> int:
    out = webhook_request(fn.url, {"n": key}, path, secret, key, scheme=scheme)
    return fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30).status_code


def test_a_route_secret_opens_only_its_route(served: tuple[FunctionProcess, FakeAirflow]) -> None:
    fn, airflow = served
    assert _send(fn, "/shop", SHOP_NEW, "a") == 200
    assert _send(fn, "/shop", SHOP_OLD, "b") == 200  # rotation: the old secret still works until removed
    assert _send(fn, "/shop", GLOBAL, "c") == 401  # the route has its own secrets
    assert _send(fn, "/misc", GLOBAL, "d") == 200
    assert _send(fn, "/misc", SHOP_NEW, "e") == 401
    assert sorted(dag for dag, _ in airflow.runs) == ["misc", "shop_orders", "shop_orders"]


def test_standard_webhooks_route(served: tuple[FunctionProcess, FakeAirflow]) -> None:
    fn, airflow = served
    assert _send(fn, "/billing", BILLING, "msg_1", scheme="standard-webhooks") == 200
    assert _send(fn, "/billing", BILLING, "msg_1", scheme="standard-webhooks") == 200  # redelivery: 409 → duplicate
    assert _send(fn, "/shop", BILLING, "msg_2", scheme="standard-webhooks") == 401  # not the shop route's scheme
    assert _send(fn, "/billing", GLOBAL, "msg_3") == 401  # a dagtrigger-v2 signature is not this route's
    assert list(airflow.runs) == [("billing_events", next(iter(airflow.runs))[1])] and len(airflow.runs) == 1


def test_a_standard_webhooks_request_moved_to_another_path_makes_no_new_run(
    served: tuple[FunctionProcess, FakeAirflow],
) -> None:
    fn, airflow = served
    out = webhook_request(fn.url, {"n": 1}, "/billing", BILLING, "msg_9", scheme="standard-webhooks")
    for path in ("/billing", "/billing/", "/billing/x?y=1", "/shop", "/misc", "/billing/dags/misc"):
        reply = fn.session.post(fn.url + path, headers=dict(out.headers), data=out.body, timeout=30)
        assert reply.status_code < 500
    assert len(airflow.runs) == 1
