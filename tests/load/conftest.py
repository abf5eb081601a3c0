"""Shared by the load and fault wrappers: one storage emulator (dead letters) and one real Airflow 3 per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.localairflow import AirflowServer
from tests.load.runner import Rig, rig


@pytest.fixture(scope="session")
def load_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with rig(tmp_path_factory.mktemp("load")) as shared:
        yield shared


@pytest.fixture(scope="session")
def airflow3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """No auth (anonymous admin): the function runs with AIRFLOW_AUTH=none, AIRFLOW_MAX_IN_FLIGHT=1 (SQLite)."""
    with AirflowServer(3, tmp_path_factory.mktemp("load-airflow3"), auth="none") as server:
        yield server
