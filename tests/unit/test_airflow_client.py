"""The Airflow client against fakes (local servers that inject faults), not against Airflow itself."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dagtrigger.airflow import AirflowClient, TriggerCall, make_session
from dagtrigger.airflow_auth import Auth
from dagtrigger.exceptions import AirflowUnreachable
from tests.support.clock import FakeClock
from tests.support.fakes import Answer, FakeAirflow, FakeServer, Seen, free_port


def client(
    url: str,
    budget_s: float = 5.0,
    timeout_s: float = 2.0,
    version: str = "auto",
    auth: Auth | None = None,
    clock: FakeClock | None = None,
) -> AirflowClient:
    """A client whose retries wait on a fake clock (pass one to read the waits): no test sleeps in real time."""
    session = make_session(budget_s, clock=clock or FakeClock())
    return AirflowClient(url, auth or Auth(), api_version=version, timeout_s=timeout_s, session=session)


CALL = TriggerCall("example_dag", "run_1", {"a": 1})


def test_detects_v2_and_sends_a_null_logical_date() -> None:
    with FakeAirflow("v2") as airflow:
        reply = client(airflow.url).trigger(CALL)
        assert (reply.status, reply.api_version) == (200, "v2")
        body = airflow.runs[("example_dag", "run_1")]
        assert body == {"dag_run_id": "run_1", "conf": {"a": 1}, "logical_date": None}


def test_detects_v1_and_omits_logical_date() -> None:
    with FakeAirflow("v1") as airflow:
        reply = client(airflow.url).trigger(CALL)
        assert (reply.status, reply.api_version) == (200, "v1")
        assert "logical_date" not in airflow.runs[("example_dag", "run_1")]


def test_version_is_probed_once() -> None:
    with FakeAirflow("v2") as airflow:
        c = client(airflow.url)
        for n in range(5):
            c.trigger(TriggerCall("d", f"r{n}", {}))
        assert len(airflow.server.requests_to("/version")) == 1


def test_second_post_of_the_same_run_is_409() -> None:
    with FakeAirflow() as airflow:
        c = client(airflow.url)
        assert c.trigger(CALL).status == 200
        assert c.trigger(CALL).status == 409


def test_dag_id_is_url_encoded() -> None:
    with FakeAirflow() as airflow:
        client(airflow.url, version="v2").trigger(TriggerCall("a.b-c_d", "r", {}))
        assert airflow.server.seen[-1].path == "/api/v2/dags/a.b-c_d/dagRuns"
        assert client(airflow.url, version="v2").dag_runs_url("x/../y").endswith("/dags/x%2F..%2Fy/dagRuns")


def test_503_storm_then_recovery_is_retried_in_process() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(503, "<html>busy</html>")] * 3
        clock = FakeClock()
        reply = client(airflow.url, clock=clock).trigger(CALL)
        assert reply.status == 200
        assert len(airflow.server.requests_to("/dagRuns")) == 4
        # urllib3's backoff: none before the 2nd attempt, then 0.25 · 2^n s plus up to 0.25 s of jitter.
        assert len(clock.slept) == 2
        assert all(0.5 * 2**n <= wait <= 0.5 * 2**n + 0.25 for n, wait in enumerate(clock.slept))


def test_retry_after_is_honoured() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(429, {"detail": "slow down"}, {"Retry-After": "1"})]
        clock = FakeClock()
        assert client(airflow.url, clock=clock).trigger(CALL).status == 200
        assert clock.slept == [1.0]


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(503, {"detail": "maintenance"}, {"Retry-After": "120"})] * 5
        clock = FakeClock()
        reply = client(airflow.url, budget_s=3, clock=clock).trigger(CALL)
        assert reply.status == 503
        assert clock.slept == []
        assert len(airflow.server.requests_to("/dagRuns")) == 1


def test_endless_5xx_stops_within_the_budget() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(500, "<html><body><h1>Oops</h1> Internal error</body></html>")] * 100
        clock = FakeClock()
        reply = client(airflow.url, budget_s=1.5, clock=clock).trigger(CALL)
        assert reply.status == 500
        assert "Oops Internal error" in reply.message  # HTML page reduced to its text
        assert sum(clock.slept) == pytest.approx(1.5)  # the last wait is cut to what is left of the budget
        assert 2 <= len(airflow.server.requests_to("/dagRuns")) < 8


def test_a_generous_budget_leaves_the_attempt_count_to_end_the_retries() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(503, "busy")] * 100
        clock = FakeClock()
        reply = client(airflow.url, budget_s=100, clock=clock).trigger(CALL)
        # A generous budget: the attempt count (8) ends it, after 6 backoffs of 0.25 · 2^n s capped at 8 s.
        assert reply.status == 503
        assert len(airflow.server.requests_to("/dagRuns")) == 8
        assert len(clock.slept) == 6 and clock.slept[-2:] == [8.0, 8.0]


def test_connection_refused_raises_unreachable_within_the_budget() -> None:
    port = free_port()
    clock = FakeClock()
    with pytest.raises(AirflowUnreachable):
        client(f"http://127.0.0.1:{port}", budget_s=1.0, version="v2", clock=clock).trigger(CALL)
    assert sum(clock.slept) == pytest.approx(1.0)


def test_dropped_connection_is_retried() -> None:
    with FakeAirflow() as airflow:
        airflow.faults = [Answer(drop=True), Answer(drop=True)]
        assert client(airflow.url).trigger(CALL).status == 200


def test_a_hung_request_that_did_reach_airflow_ends_as_a_duplicate_not_a_second_run() -> None:
    created: list[str] = []
    lock = threading.Lock()

    def handler(seen: Seen) -> Answer:
        if seen.path.endswith("/version"):
            return Answer(200, {"version": "3"})
        run_id = seen.json()["dag_run_id"]
        with lock:
            first = run_id not in created
            created.append(run_id)
        # The first attempt is processed but answered too late: the client times out and retries.
        return Answer(200, {}, delay_s=1.5) if first else Answer(409, {"detail": "exists"})

    with FakeServer(handler) as server:
        reply = client(server.url, timeout_s=0.5).trigger(CALL)
        assert reply.status == 409
        assert created == ["run_1", "run_1"]


class CountingAuth(Auth):
    refreshable = True

    def __init__(self) -> None:
        self.invalidated = 0

    def __call__(self, request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer token-{self.invalidated}"
        return request

    def invalidate(self) -> None:
        self.invalidated += 1


def test_401_drops_the_cached_token_and_tries_once_more() -> None:
    def handler(seen: Seen) -> Answer:
        ok = seen.headers.get("Authorization") == "Bearer token-1"
        return Answer(200, {}) if ok else Answer(401, {"detail": "expired"})

    auth = CountingAuth()
    with FakeServer(handler) as server:
        reply = client(server.url, version="v2", auth=auth).trigger(CALL)
        assert reply.status == 200
        assert auth.invalidated == 1


def _serves(version: str, missing_dag: str = "") -> tuple[list[str], Callable[[Seen], Answer]]:
    """A fake Airflow serving one API version only: the other's paths are 404, as on a real server."""
    calls: list[str] = []

    def answer(seen: Seen) -> Answer:
        calls.append(f"{seen.method} {seen.path}")
        if not seen.path.startswith(f"/api/{version}/"):
            return Answer(404, {"detail": "Not Found"})
        if seen.path.endswith("/version"):
            return Answer(200, {"version": "fake"})
        if missing_dag and f"/dags/{missing_dag}/" in seen.path:
            return Answer(404, {"detail": f"DAG {missing_dag} not found"})
        return Answer(200, {"dag_run_id": seen.json()["dag_run_id"], "state": "queued"})

    return calls, answer


@pytest.mark.parametrize(("configured", "served"), [("v2", "v1"), ("v1", "v2")])
def test_a_configured_version_airflow_does_not_serve_is_replaced_at_the_first_404(
    configured: str, served: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls, answer = _serves(served)
    with FakeServer(answer) as airflow:
        fn = client(airflow.url, version=configured)
        with caplog.at_level("WARNING", logger="dagtrigger"):
            reply = fn.trigger(CALL)
        assert (reply.status, reply.api_version) == (200, served)
        assert calls == [
            f"POST /api/{configured}/dags/example_dag/dagRuns",
            f"GET /api/{configured}/version",  # the API itself is missing, not only the DAG
            *(["GET /api/v2/version"] if configured == "v1" else ["GET /api/v2/version", "GET /api/v1/version"]),
            f"POST /api/{served}/dags/example_dag/dagRuns",
        ]
        assert f"AIRFLOW_API_VERSION={configured}" in caplog.text and "[api-version-mismatch]" in caplog.text
        calls.clear()
        fn.trigger(TriggerCall("example_dag", "run_2", {}))
        assert calls == [f"POST /api/{served}/dags/example_dag/dagRuns"]


def test_a_missing_dag_under_the_right_configured_version_stays_a_404_checked_once() -> None:
    calls, answer = _serves("v2", missing_dag="gone")
    with FakeServer(answer) as airflow:
        fn = client(airflow.url, version="v2")
        gone = TriggerCall("gone", "run_1", {})
        assert fn.trigger(gone).status == 404
        assert calls == ["POST /api/v2/dags/gone/dagRuns", "GET /api/v2/version"]
        calls.clear()
        assert fn.trigger(gone).status == 404  # confirmed: no second check
        assert calls == ["POST /api/v2/dags/gone/dagRuns"]
