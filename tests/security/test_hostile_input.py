"""Issue 16, finding 9: hostile bytes that still reached a 500, a traceback or a raw log line.

- a manifest of 5,000 nested ``[`` raised RecursionError: a 500 and a traceback on every delivery, no dead letter,
  and the event-age limit never applied; now it is the manifest's permanent failure, like any manifest that is not
  JSON;
- a malformed chunked body gave an unauthenticated caller a 500 and a traceback; now a 400;
- a decoded path with ESC, CR or C1 bytes reached the log raw; now every log line is one line of printable JSON.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator
from tests.unit.samples import storage_attrs, storage_data

from .harness import event_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator(subprocess_mode=True) as emulator:
        emulator.create_bucket("landing")
        yield emulator


def test_a_deeply_nested_manifest_is_a_permanent_failure(
    airflow: FakeAirflow, gcs: StorageEmulator, tmp_path: Path
) -> None:
    gcs.client().bucket("landing").blob("x/manifest.json").upload_from_string("[" * 5000 + "]" * 5000)
    route = {
        "name": "done",
        "dag_id": "d",
        "match": {"kind": "storage", "bucket": "landing"},
        "marker": "_SUCCESS",
        "manifest": {"object": "concat(folder, '/manifest.json')"},
    }
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"routes": [route]}))
    with FunctionProcess("trigger_event", event_env(airflow.url, routes, **gcs.env()), tmp_path) as fn:
        reply = fn.send_event(storage_attrs(name="x/_SUCCESS"), storage_data(name="x/_SUCCESS"))
        assert reply.status_code == 200, reply.text
        assert reply.json()["outcome"] == "failed" and "not valid JSON" in reply.text
        assert "Traceback" not in fn.output()
    assert airflow.runs == {}


def _raw(fn: FunctionProcess, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", fn.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_malformed_chunked_body_is_a_400(webhook_function: FunctionProcess, airflow: FakeAirflow) -> None:
    request = (
        b"POST /shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    )
    answer = _raw(webhook_function, request)
    assert answer.split(b"\r\n", 1)[0].split(b" ")[1] in (b"400", b"401"), answer[:300]
    assert "Traceback" not in webhook_function.output()
    assert airflow.runs == {}


def test_control_bytes_in_a_path_never_reach_a_log_line_raw(
    webhook_function: FunctionProcess, airflow: FakeAirflow
) -> None:
    for path in ("/shop/%1b%5b2J%0dFAKE", "/shop/%c2%9b31m", "/shop/%e2%80%a8next"):
        reply = webhook_function.post(path, json={"a": 1})
        assert reply.status_code in (400, 401), reply.text
    raw = webhook_function.output()
    for bad in ("\x1b", "\r", "\x9b", "\u2028"):
        assert bad not in raw, (bad, raw[-2000:])
    assert airflow.runs == {}
