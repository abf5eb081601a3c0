"""Issue 16, finding 6: bodies that stall held every worker thread. With 2 threads, 2 sockets that send headers and
one byte of a 100-byte body blocked the function: a valid signed request then waited for as long as they held. The
time to read a body is now bounded (BODY_READ_TIMEOUT_S), so a stalled sender loses its thread, with a 408."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from dagtrigger.send import webhook_request
from dagtrigger.settings import BODY_READ_TIMEOUT_S
from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow

from .harness import ROUTES, SECRET, webhook_env

pytestmark = pytest.mark.integration


def test_stalled_bodies_do_not_hold_the_workers(airflow: FakeAirflow, tmp_path: Path) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps(ROUTES))
    with FunctionProcess("trigger_http", webhook_env(airflow.url, routes, THREADS="2"), tmp_path) as fn:
        stalled = []
        for _ in range(2):
            sock = socket.create_connection(("127.0.0.1", fn.port), timeout=60)
            sock.sendall(
                b"POST /shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            stalled.append(sock)
        time.sleep(0.5)  # both threads are now reading a body that does not come
        try:
            out = webhook_request(fn.url, {"order": 6}, "/shop", SECRET, "after-the-stall")
            reply = fn.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=BODY_READ_TIMEOUT_S + 10)
            assert reply.status_code == 200, reply.text
            answers = [sock.recv(200) for sock in stalled]
            assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
        finally:
            for sock in stalled:
                sock.close()
