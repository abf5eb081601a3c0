"""dagtrigger.warmup: the first event's work (token, API version, connection) done at start-up, off its path."""

from __future__ import annotations

import logging

import pytest
import requests

from dagtrigger.airflow import AirflowClient
from dagtrigger.auth import StaticBearer
from dagtrigger.warmup import enabled, in_thread, start, warm
from devtools.fakes import Answer, FakeServer, Seen
from devtools.ports import free_port

LOG = logging.getLogger("test-warmup")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"K_SERVICE": "dagtrigger"}, True),  # Cloud Run
        ({"K_SERVICE": "dagtrigger", "DAGTRIGGER_WARMUP": "0"}, False),
        ({"DAGTRIGGER_WARMUP": "1"}, True),
        ({"DAGTRIGGER_WARMUP": "off"}, False),
    ],
)
def test_enabled_on_cloud_run_unless_turned_off(env: dict[str, str], expected: bool) -> None:
    assert enabled(env) is expected


def test_warm_up_probes_the_version_with_the_token_and_leaves_a_pooled_connection() -> None:
    def answer(seen: Seen) -> Answer:
        return Answer(200, {"version": "3.3.2"}) if seen.path == "/api/v2/version" else Answer(404, {})

    with FakeServer(answer) as airflow:
        client = AirflowClient(airflow.url, StaticBearer("t0ken"), timeout_s=5)
        in_thread(client, LOG).join(10)
        assert client.api_version() == "v2"  # known now: the first event does not probe
        paths = [seen.path for seen in airflow.seen]
        assert paths == ["/api/v2/version", "/api/v2/version"]
        assert all(seen.headers.get("Authorization") == "Bearer t0ken" for seen in airflow.seen)
        pool = client.session.get_adapter(airflow.url).poolmanager
        assert any(p.pool is not None and p.pool.qsize() > 0 for p in pool.pools._container.values())


def test_warm_up_never_fails_start_up_when_airflow_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    client = AirflowClient(f"http://127.0.0.1:{free_port()}", StaticBearer("t"), timeout_s=1, retry_budget_s=0.5)
    with caplog.at_level(logging.INFO, logger="test-warmup"):
        assert warm(client, LOG) is False
    assert "warm-up skipped" in caplog.text


def test_off_means_no_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requests.Session, "request", lambda *a, **k: pytest.fail("no request expected"))
    client = AirflowClient("http://127.0.0.1:9", StaticBearer("t"), timeout_s=1)
    assert start(client, LOG, {}) is False
