"""An Airflow 2 plugin for one integration test: every trigger posted without a logical date gets the same one.

Airflow 2 gives such a trigger ``timezone.utcnow()`` (its REST schema's pre-load hook), and ``(dag_id,
logical_date)`` is unique: two triggers of one DAG in the same instant collide (apache/airflow#28486). Pinning that
instant to ``DAGTRIGGER_TEST_PINNED_NOW`` makes "the same instant" happen on every trigger, deterministically.
Only that hook's clock is replaced; everything else in the web server keeps the real time. Loaded by the web server
from ``[core] plugins_folder`` (tests/integration/test_logical_date_clash.py); never used outside tests.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.api_connexion.schemas import dag_run_schema
from airflow.plugins_manager import AirflowPlugin
from airflow.utils import timezone

_PINNED = timezone.parse(os.environ["DAGTRIGGER_TEST_PINNED_NOW"])


class _PinnedClock:
    """``airflow.utils.timezone`` as the schema sees it, with ``utcnow`` pinned."""

    def __getattr__(self, name: str) -> Any:
        return getattr(timezone, name)

    @staticmethod
    def utcnow() -> datetime:
        return _PINNED


dag_run_schema.timezone = _PinnedClock()  # type: ignore[assignment]


class PinnedNow(AirflowPlugin):
    name = "dagtrigger_pinned_now"
