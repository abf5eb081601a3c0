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

from .harness import ROUTES, webhook_env


@pytest.fixture()
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow("v2") as fake:
        yield fake


@pytest.fixture()
def routes_file(tmp_path: Path) -> Path:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps(ROUTES))
    return path


@pytest.fixture()
def webhook_function(airflow: FakeAirflow, routes_file: Path, tmp_path: Path) -> Iterator[FunctionProcess]:
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes_file), tmp_path) as fn:
        yield fn
