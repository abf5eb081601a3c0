"""The function as users run it: a real functions-framework process on 127.0.0.1, fed real CloudEvents.

The one launcher of function processes for the demo, the tests, bench/ (which also serves its baseline functions
from another source file) and the load harness (N of them, as N Cloud Run instances).
"""

from __future__ import annotations

import json
import os
import signal
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
from devtools import processes
from devtools.ports import HOST, free_port, wait_port_open

REPO = Path(__file__).resolve().parents[1]
START_DEADLINE_S = 30.0
# Settings of ours that must not leak into the function: its configuration comes from ``env`` alone.
_DROP = ("AIRFLOW", "GCE_METADATA", "GOOGLE_", "PYTHONDONTWRITEBYTECODE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def clean_env(extra: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """Our environment minus AIRFLOW*, GCE_METADATA*, GOOGLE_* and CA-bundle settings, plus ``extra``.

    Bytecode caching stays on, as in a built image; gcloud's config points at an empty directory, so no developer
    credentials are found by accident.
    """
    keep = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    gcloud = workdir / "gcloud-empty"
    gcloud.mkdir(parents=True, exist_ok=True)
    return {**keep, "CLOUDSDK_CONFIG": str(gcloud), **extra}


class FunctionProcess:
    """``functions-framework --target T --source S`` in its own process group, its output (our JSON logs) in a file.

    ``source`` defaults to the repository's main.py; ``started_at`` (monotonic) and ``port_open_s`` are recorded
    for cold-start measurements.
    """

    def __init__(
        self,
        target: str,
        env: Mapping[str, str],
        workdir: Path,
        signature: str | None = None,
        *,
        source: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.target = target
        self.signature = signature or ("cloudevent" if target == "trigger_event" or source else "http")
        self.source = source or REPO / "main.py"
        self.port = port if port is not None else free_port()
        self.url = f"http://{HOST}:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"function-{target}-{self.port}.log"
        self.env = clean_env(env, workdir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.session = requests.Session()
        self.started_at = 0.0
        self.port_open_s = 0.0
        self._since = 0

    def __enter__(self) -> FunctionProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, wait: bool = True) -> None:
        """Start the process; with ``wait`` return once its port accepts connections (raises if it exits first)."""
        cmd = [
            str(Path(sys.executable).with_name("functions-framework")),
            f"--target={self.target}",
            f"--signature-type={self.signature}",
            f"--source={self.source}",
            f"--host={HOST}",
            f"--port={self.port}",
        ]
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = processes.spawn(cmd, what=f"function {self.target}", stdout=log, env=self.env, cwd=REPO)
        if wait:
            self.wait_port()

    def wait_port(self) -> float:
        """Seconds from process start until the port accepted a connection."""
        assert self.proc is not None
        deadline = self.started_at + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                processes.untag(self.proc.pid)  # it exited by itself (a refused start): nothing left to reap
                raise RuntimeError(f"{self.target} exited with {self.proc.returncode}:\n{self.tail()}")
            if wait_port_open(self.port, 0.0):
                self.port_open_s = time.monotonic() - self.started_at
                return self.port_open_s
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.target} did not open port {self.port} in {START_DEADLINE_S:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        processes.stop_group(self.proc, first=signal.SIGINT, grace_s=10)  # gunicorn's quick shutdown; SIGTERM waits

    def mark(self) -> None:
        """Later ``output()`` and ``logs()`` see only what the process wrote after this call."""
        self._since = self.log_path.stat().st_size if self.log_path.exists() else 0

    def output(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as handle:
            handle.seek(self._since)
            return handle.read().decode("utf-8", errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

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

    def pids(self) -> tuple[int, list[int]]:
        """The gunicorn master (the process we started) and its workers (its children)."""
        assert self.proc is not None
        return self.proc.pid, children(self.proc.pid)

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


def children(pid: int) -> list[int]:
    """Child pids, from /proc/<pid>/task/*/children, or by scanning /proc when that file is not available."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return sorted(set(found))
    except OSError:
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)
