"""Shared by the load and fault wrappers: one storage emulator (dead letters), a SQLite Airflow 3 without scheduler,
and a PostgreSQL-backed Airflow 3 with its scheduler, each started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devtools.localairflow import AirflowServer
from loadtest.scenarios import Rig, rig


@pytest.fixture(scope="session")
def load_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """Two function instances: deliveries round-robin, every duplicate on the other instance."""
    with rig(tmp_path_factory.mktemp("load"), n_instances=2) as shared:
        yield shared


@pytest.fixture(scope="session")
def airflow3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """No auth (anonymous admin): the function runs with AIRFLOW_AUTH=none, AIRFLOW_MAX_IN_FLIGHT=1 (SQLite)."""
    with AirflowServer(3, tmp_path_factory.mktemp("load-airflow3"), auth="none") as server:
        yield server


@pytest.fixture(scope="session")
def airflow3_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    """Production-shaped: PostgreSQL, scheduler, dag-processor and triggerer; runs really execute."""
    workdir = tmp_path_factory.mktemp("load-airflow3-pg")
    with AirflowServer(3, workdir, auth="none", database="postgres", scheduler=True) as server:
        yield server
