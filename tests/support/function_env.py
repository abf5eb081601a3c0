"""The function's settings for talking to a test Airflow server (shared by the integration, load and bench tests)."""

from __future__ import annotations

from devtools.localairflow import AirflowServer


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
