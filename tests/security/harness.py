"""What the security tests share: the webhook secret, the routes under attack and the function's settings.

A module, not the conftest, so tests import it (no test imports a conftest).
"""

from __future__ import annotations

from pathlib import Path

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


def event_env(airflow_url: str, routes_file: Path, **extra: str) -> dict[str, str]:
    """Settings of a ``trigger_event`` function (Eventarc's entry point) against a fake Airflow without auth."""
    env = {
        "AIRFLOW_URI": airflow_url,
        "AIRFLOW_API_VERSION": "v2",
        "AIRFLOW_AUTH": "none",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "0",
        "AIRFLOW_TIMEOUT_SECONDS": "3",
        "ROUTES_FILE": str(routes_file),
    }
    env.update(extra)
    return env
