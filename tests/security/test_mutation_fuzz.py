"""Hypothesis mutates captured signed requests against a real process; a run from a mutated request is a failure."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import SECRET, webhook_env

PATHS = ["/shop", "/shop/dags/shop_orders", "/billing"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionProcess, FakeAirflow]]:
    import json

    from .harness import ROUTES

    workdir = tmp_path_factory.mktemp("mutations")
    routes = workdir / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    with FakeAirflow("v2") as airflow, FunctionProcess("trigger_http", webhook_env(airflow.url, routes), workdir) as fn:
        yield fn, airflow


def _post(fn: FunctionProcess, target: str, headers: dict[str, str], body: bytes, method: str = "POST") -> int:
    connection = http.client.HTTPConnection("127.0.0.1", fn.port, timeout=30)
    try:
        connection.request(method, target, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


mutations = st.one_of(
    st.tuples(st.just("path"), st.sampled_from(["/shop/", "/shopX", "/shop/dags/shop_refunds", "/billing", "/",
                                                "/%73hop", "/shop//", "/SHOP", "/shop/dags/shop_orders/"])),
    st.tuples(st.just("query"), st.sampled_from(["?a=1", "?", "?dag_id=shop_refunds"])),
    st.tuples(st.just("key"), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)),
    st.tuples(st.just("add-header"), st.sampled_from(["X-Idempotency-Key", "X-Request-Id", "webhook-id"])),
    st.tuples(st.just("drop-key"), st.just("")),
    st.tuples(st.just("body"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("method"), st.sampled_from(["PUT", "PATCH"])),
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=st.sampled_from(PATHS),
    order=st.integers(min_value=1, max_value=10**9),
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20),
    mutation=mutations,
)
def test_no_mutation_of_a_signed_request_creates_a_run(
    served: tuple[FunctionProcess, FakeAirflow], path: str, order: int, key: str, mutation: tuple[str, str]
) -> None:
    fn, airflow = served
    captured = webhook_request(fn.url, {"order": order}, path, SECRET, key)
    headers = dict(captured.headers)
    status = _post(fn, path, headers, captured.body)
    assert status == 200
    before = set(airflow.runs)
    what, value = mutation
    target, body, method = path, captured.body, "POST"
    if what == "path":
        target = value
    elif what == "query":
        target = path + value
    elif what == "key":
        headers["Idempotency-Key"] = value
    elif what == "add-header":
        headers[value] = "attacker-chosen"
    elif what == "drop-key":
        headers.pop("Idempotency-Key")
    elif what == "body":
        body = captured.body + value
    elif what == "method":
        method = value
    answer = _post(fn, target, headers, body, method)
    assert answer < 500
    assert set(airflow.runs) == before, (mutation, answer, set(airflow.runs) - before)


def test_the_fuzzer_can_see_a_run(served: tuple[FunctionProcess, FakeAirflow], tmp_path: Path) -> None:
    """The property above means something only if a fresh signed request does create a run."""
    fn, airflow = served
    before = len(airflow.runs)
    out = webhook_request(fn.url, {"order": -1}, "/shop", SECRET, "fresh-key-for-the-control")
    assert _post(fn, "/shop", dict(out.headers), out.body) == 200
    assert len(airflow.runs) == before + 1
