"""Finding 1: one captured signature must never make more than the one run it was made for."""

from __future__ import annotations

import pytest
import requests

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import SECRET

pytestmark = pytest.mark.integration  # starts real function processes


def _send(fn: FunctionProcess, url: str, headers: dict[str, str], body: bytes) -> requests.Response:
    return fn.session.post(url, headers=headers, data=body, timeout=30)


def test_mutating_a_captured_signed_request_never_makes_another_run(
    webhook_function: FunctionProcess, airflow: FakeAirflow
) -> None:
    captured = webhook_request(webhook_function.url, {"order": 123}, "/shop", SECRET, "order-123")
    first = _send(webhook_function, captured.url, dict(captured.headers), captured.body)
    assert first.status_code == 200, first.text
    assert len(airflow.runs) == 1
    base = webhook_function.url
    headers = dict(captured.headers)
    mutations: list[tuple[str, dict[str, str]]] = [
        (captured.url, headers),  # exact replay inside the tolerance
        (captured.url, {**headers, "Idempotency-Key": "order-124"}),
        (captured.url, {k: v for k, v in headers.items() if k != "Idempotency-Key"}),
        (captured.url, {**headers, "X-Idempotency-Key": "other"}),
        (captured.url, {**headers, "X-Request-Id": "other"}),
        (base + "/shop/", headers),
        (base + "/shopX", headers),
        (base + "/shop?x=1", headers),
        (base + "/shop/dags/shop_refunds", headers),
        (base + "/shop/dags/shop_orders", headers),
        (base + "/billing", headers),
        (base + "/", headers),
        (base + "/%73hop", headers),
    ]
    statuses = []
    for url, variant in mutations:
        statuses.append(_send(webhook_function, url, variant, captured.body).status_code)
    assert all(s < 500 for s in statuses), statuses
    assert len(airflow.runs) == 1, (sorted(airflow.runs), statuses)


def test_body_mutation_is_refused(webhook_function: FunctionProcess, airflow: FakeAirflow) -> None:
    captured = webhook_request(webhook_function.url, {"order": 123}, "/shop", SECRET, "order-123")
    reply = _send(webhook_function, captured.url, dict(captured.headers), captured.body.replace(b"123", b"124"))
    assert reply.status_code == 401
    assert airflow.runs == {}


def test_unsigned_webhook_is_refused(webhook_function: FunctionProcess, airflow: FakeAirflow) -> None:
    reply = webhook_function.post("/shop", json={"order": 1})
    assert reply.status_code == 401
    assert airflow.runs == {}
