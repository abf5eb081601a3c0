"""Attacks reproduced against a real functions-framework process (the function as deployed) and a fake Airflow.

The fake Airflow (tests.support.fakes.FakeAirflow) is a fake on purpose: it counts the runs each attack creates and
can answer with whatever a hostile or misconfigured server might send (echoed credentials, redirects).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

SECRET = "s3cr3t-webhook-key-0123456789abcdef"
ROUTES = {
    "routes": [
        {
            "name": "shop",
            "match": {"kind": "webhook", "path": {"prefix": "/shop"}},
            "dag_id": "shop_orders",
            "allow_dags": ["shop_orders", "shop_refunds"],
        },
        {"name": "billing", "match": {"kind": "webhook", "path": {"prefix": "/billing"}}, "dag_id": "billing"},
    ]
}


@pytest.fixture()
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow("v2") as fake:
        yield fake


def webhook_env(airflow_url: str, routes_file: Path, **extra: str) -> dict[str, str]:
    env = {
        "AIRFLOW_URI": airflow_url,
        "AIRFLOW_API_VERSION": "v2",
        "AIRFLOW_AUTH": "basic",
        "AIRFLOW_USERNAME": "op-user",
        "AIRFLOW_PASSWORD": "op-password-9f8e7d",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "0",
        "AIRFLOW_TIMEOUT_SECONDS": "3",
        "ROUTES_FILE": str(routes_file),
        "WEBHOOK_HMAC_SECRET": SECRET,
    }
    env.update(extra)
    return env


@pytest.fixture()
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    return path


@pytest.fixture()
def webhook_function(airflow: FakeAirflow, routes_file: Path, tmp_path: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes_file), tmp_path) as fn:
        yield fn
