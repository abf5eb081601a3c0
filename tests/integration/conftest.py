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
