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


@pytest.fixture(scope="module")
def module_airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow("v2") as fake:
        yield fake


@pytest.fixture()
def airflow(module_airflow: FakeAirflow) -> FakeAirflow:
    """One fake per module (one function process per module is what keeps this tier fast); each test starts with
    no runs recorded, so every count is that test's own."""
    module_airflow.runs.clear()
    return module_airflow


@pytest.fixture(scope="module")
def routes_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("routes") / "routes.json"
    path.write_text(json.dumps(ROUTES))
    return path


@pytest.fixture(scope="module")
def module_webhook_function(
    module_airflow: FakeAirflow, routes_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionProcess]:
    env = webhook_env(module_airflow.url, routes_file)
    with FunctionProcess("trigger_http", env, tmp_path_factory.mktemp("webhook")) as fn:
        yield fn


@pytest.fixture()
def webhook_function(module_webhook_function: FunctionProcess, airflow: FakeAirflow) -> FunctionProcess:
    module_webhook_function.mark()
    return module_webhook_function
