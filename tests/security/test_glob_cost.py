"""Issue 16, finding 10: route globs took seconds per event (``exports/*-*-*-*-*.csv`` against 250 dashes: 17.6 s),
and a webhook path glob is evaluated before the signature check, so one unsigned request held a worker for 49.9 s.
Globs are now matched in time linear in the name (times the pattern), never by backtracking.

The bounds below are 5 s for work that took minutes before (400 dashes, five stars) and takes milliseconds now.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.unit.samples import storage_attrs, storage_data

from .harness import event_env, webhook_env

pytestmark = pytest.mark.integration
DASHES = "-" * 400


def _routes(tmp_path: Path, route: dict[str, object]) -> Path:
    path = tmp_path / "routes.json"
    path.write_text(json.dumps({"routes": [route]}))
    return path


def test_a_storage_name_against_a_starry_glob_is_quick(airflow: FakeAirflow, tmp_path: Path) -> None:
    route = {"name": "csv", "dag_id": "d", "match": {"kind": "storage", "name": {"glob": "exports/*-*-*-*-*.csv"}}}
    with FunctionProcess("trigger_event", event_env(airflow.url, _routes(tmp_path, route)), tmp_path) as fn:
        name = f"exports/{DASHES}.txt"
        fn.session.request = _bounded(fn.session.request)  # type: ignore[method-assign]  # send_event waits 90 s
        assert fn.send_event(storage_attrs(name=name), storage_data(name=name)).status_code == 200
    assert airflow.runs == {}


def test_an_unsigned_webhook_path_against_a_starry_glob_is_quick(airflow: FakeAirflow, tmp_path: Path) -> None:
    route = {"name": "h", "dag_id": "d", "match": {"kind": "webhook", "path": {"glob": "/hooks/*-*-*-*-*/x"}}}
    with FunctionProcess("trigger_http", webhook_env(airflow.url, _routes(tmp_path, route)), tmp_path) as fn:
        reply = fn.session.post(f"{fn.url}/hooks/{DASHES}", json={"a": 1}, timeout=5)
        assert reply.status_code == 401, reply.text


def _bounded(request):  # type: ignore[no-untyped-def]
    """The session's request with a 5 s timeout: a slow answer fails the test as a ReadTimeout."""

    def call(*args, **kwargs):  # type: ignore[no-untyped-def]
        kwargs["timeout"] = 5
        return request(*args, **kwargs)

    return call
