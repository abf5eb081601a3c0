"""DAGs that the local Airflow servers serve; they import on Airflow 2.11 and 3.3 alike.

Nothing here runs a task in tests (no scheduler is started): the DAGs only have to exist,
serialized, so that the trigger POST finds them. Run ids and conf come from the caller.
"""

# mypy: ignore-errors
# (airflow is not installed in the function's venv, where mypy runs)

from __future__ import annotations

import datetime

try:  # Airflow 3: the task SDK and the standard provider
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.empty import EmptyOperator
    from airflow.operators.python import PythonOperator

_START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def _print_conf(**context: object) -> None:
    """Show the conf in the task log, for whoever runs a scheduler by hand."""
    print("conf:", getattr(context.get("dag_run"), "conf", None))


def _dag(dag_id: str, *, paused: bool) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=_START,
        catchup=False,
        is_paused_upon_creation=paused,
        tags=["dagtrigger"],
    )


with _dag("dagtrigger_example", paused=False) as example_dag:
    PythonOperator(task_id="print_conf", python_callable=_print_conf)

with _dag("dagtrigger_other", paused=False) as other_dag:
    EmptyOperator(task_id="noop")

# A paused DAG still accepts the trigger POST; its run just stays queued.
with _dag("dagtrigger_paused", paused=True) as paused_dag:
    EmptyOperator(task_id="noop")
