"""Real Apache Airflow servers (2.x with API v1, 3.x with API v2) on 127.0.0.1 with SQLite, one at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.localairflow import AirflowServer


@pytest.fixture(scope="session", params=[2, 3], ids=["airflow2", "airflow3"])
def airflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Started in password mode: admin/op/viewer users, so auth and RBAC are the real thing."""
    major = int(request.param)
    server = AirflowServer(major, tmp_path_factory.mktemp(f"airflow{major}"), auth="password")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def function_env(airflow: AirflowServer, user: str = "op", **extra: str) -> dict[str, str]:
    """Settings for the function to talk to this server as ``user`` (basic on Airflow 2, JWT on Airflow 3)."""
    env = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "dagtrigger_example",
        "AIRFLOW_AUTH": "basic" if airflow.major == 2 else "airflow-jwt",
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": user,
        "AIRFLOW_RETRY_BUDGET_SECONDS": "3",
        "AIRFLOW_TIMEOUT_SECONDS": "10",
        # SQLite allows one writer: Airflow 3's api-server answers 500 and then hangs under concurrent trigger
        # POSTs (measured here), so the function queues its calls. Production databases take the default of 8.
        "AIRFLOW_MAX_IN_FLIGHT": "1",
    }
    env.update(extra)
    return env
