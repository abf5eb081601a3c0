"""The function as users run it: a real functions-framework process on 127.0.0.1, fed real CloudEvents."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from dagtrigger.send import percent_encode

REPO = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FunctionProcess:
    """``functions-framework --target T`` in its own process group, its stdout (our JSON logs) in a file."""

    def __init__(self, target: str, env: Mapping[str, str], workdir: Path, signature: str | None = None) -> None:
        self.target = target
        self.signature = signature or ("cloudevent" if target == "trigger_event" else "http")
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"function-{target}-{self.port}.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GCE_METADATA", "GOOGLE_"))}
        self.env = {**clean, "CLOUDSDK_CONFIG": str(workdir / "gcloud-empty"), **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self._since = 0

    def __enter__(self) -> FunctionProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        cmd = [
            str(Path(sys.executable).with_name("functions-framework")),
            f"--target={self.target}",
            f"--signature-type={self.signature}",
            f"--source={REPO / 'main.py'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"function exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"function did not open port {self.port} in {START_DEADLINE_S}s:\n{self.output()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)  # gunicorn's quick shutdown; SIGTERM waits ~2 s
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def mark(self) -> None:
        """Later ``output()`` and ``logs()`` see only what the process wrote after this call."""
        self._since = self.log_path.stat().st_size if self.log_path.exists() else 0

    def output(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._since)
            return handle.read().decode("utf-8", errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """Our JSON log lines (functions-framework's own lines are not JSON and are skipped)."""
        entries = []
        for line in self.output().splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    continue
        return entries

    def send_event(self, attrs: Mapping[str, Any], data: Any, structured: bool = False) -> requests.Response:
        """A real CloudEvent over HTTP, binary content mode by default (as Eventarc delivers)."""
        event = CloudEvent(dict(attrs), data)
        if structured:
            headers, body = to_structured(event)
        else:
            headers, body = to_binary(event)
            headers = {k: percent_encode(v) if k.lower().startswith("ce-") else v for k, v in headers.items()}
        return self.session.post(self.url, headers=headers, data=body, timeout=90)

    def post(self, path: str = "/", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 90)
        return self.session.post(self.url + path, **kwargs)
