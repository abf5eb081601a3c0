"""Issue 16, finding 6, the rest: senders that stall or trickle the *head* of a request (its line and headers), or
trickle a body a byte at a time, held every worker thread. gunicorn reads the head with a blocking socket and no
timeout, before any code of ours runs, and the body timeout was per read (a byte every second never tripped it).

Each case holds every thread of a real ``trigger_http`` / ``trigger_event`` process (THREADS=2) with two hostile
sockets, then sends a genuine request: it must be answered, and each hostile socket must get a 408. Before the fix
the genuine request timed out. Bounded everywhere: each trickle stops after ``TRICKLE_MAX`` bytes."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from dagtrigger.settings import BODY_READ_TIMEOUT_S, HEAD_READ_TIMEOUT_S
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.unit.samples import storage_attrs, storage_data

from .harness import ROUTES, SECRET, event_env, webhook_env

pytestmark = pytest.mark.integration
THREADS = 2
TRICKLE_MAX = 120  # bytes, one a second: longer than every read bound, so only a bound can end it
HEAD = b"POST /shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
EVENT_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/cloudevents+json\r\n"
WAIT_S = max(HEAD_READ_TIMEOUT_S, BODY_READ_TIMEOUT_S) + 20  # the genuine request's patience


def _stall(head: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send ``head`` and then nothing."""

    def run(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(head)

    return run


def _trickle(prefix: bytes, tail: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send ``prefix``, then ``tail`` one byte a second until stopped, refused, or ``TRICKLE_MAX`` bytes are sent."""

    def run(sock: socket.socket, stop: threading.Event) -> None:
        sock.sendall(prefix)
        for byte in tail[:TRICKLE_MAX]:
            if stop.wait(1.0):
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # the function closed the connection: the bound worked
                return

    return run


@contextmanager
def hostile(
    fn: FunctionProcess, behaviour: Callable[[socket.socket, threading.Event], None], count: int = THREADS
) -> Iterator[list[bytes]]:
    """``count`` sockets doing ``behaviour``; yields the list their first answers are put in once the test is done."""
    stop = threading.Event()
    socks = [socket.create_connection(("127.0.0.1", fn.port), timeout=WAIT_S + 30) for _ in range(count)]
    workers = [threading.Thread(target=behaviour, args=(s, stop), daemon=True) for s in socks]
    for worker in workers:
        worker.start()
    stop.wait(1.5)  # every thread of the function is now reading from one of them
    answers: list[bytes] = []
    try:
        yield answers
        answers.extend(_first_answer(s) for s in socks)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=5)
        for sock in socks:
            sock.close()


def _first_answer(sock: socket.socket) -> bytes:
    try:
        return sock.recv(400)
    except OSError as error:
        return repr(error).encode()


@pytest.fixture()
def webhook_fn(airflow: FakeAirflow, tmp_path: Path) -> Iterator[FunctionProcess]:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes, THREADS=str(THREADS)), tmp_path) as fn:
        yield fn


def _genuine(fn: FunctionProcess, label: str) -> int:
    out = webhook_request(fn.url, {"order": label}, "/shop", SECRET, label)
    return fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=WAIT_S).status_code


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(_stall(HEAD), id="stalled-head"),
        pytest.param(_trickle(b"POST /shop HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200), id="trickled-head"),
        pytest.param(_trickle(HEAD + b"Content-Length: 200\r\n\r\n", b"{" + b" " * 198 + b"}"), id="trickled-body"),
    ],
)
def test_slow_senders_do_not_hold_the_workers(
    webhook_fn: FunctionProcess, behaviour: Callable[[socket.socket, threading.Event], None]
) -> None:
    with hostile(webhook_fn, behaviour) as answers:
        assert _genuine(webhook_fn, "after-the-slow-ones") == 200
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert any(b"did not arrive within" in a for a in answers), answers  # the reason, as for every rejection


def test_a_stalled_cloud_event_body_gets_a_408(airflow: FakeAirflow, tmp_path: Path) -> None:
    """trigger_event's body is read by functions-framework, before our code: it was never bounded."""
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [{"name": "any", "match": {"kind": "storage"}, "dag_id": "landing"}]}))
    env = event_env(airflow.url, routes, THREADS=str(THREADS))
    with FunctionProcess("trigger_event", env, tmp_path) as fn:
        with hostile(fn, _stall(EVENT_HEAD + b"Content-Length: 500\r\n\r\n{")) as answers:
            reply = fn.send_event(storage_attrs(name="in/after.csv"), storage_data(name="in/after.csv"))
            assert reply.status_code == 200, reply.text
        assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers


def test_one_thread_is_bounded_too(airflow: FakeAirflow, tmp_path: Path) -> None:
    """THREADS=1 (what deploy sets for --concurrency 1) made gunicorn use its sync worker, which had no bound."""
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes, THREADS="1"), tmp_path) as fn:
        with hostile(fn, _stall(HEAD), count=1) as answers:
            assert _genuine(fn, "one-thread") == 200
        assert answers[0].startswith(b"HTTP/1.1 408"), answers
