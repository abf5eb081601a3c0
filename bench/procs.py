"""Processes the bench starts: functions-framework (ours or a baseline) and the HTTPS endpoint; their memory.

``devtools.localfunction.FunctionProcess`` always serves ``main.py``; the baselines live in another file, so this
small runner takes the source too, and records when the process was started (for cold start).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
START_DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str], workdir: Path) -> dict[str, str]:
    """Our environment without settings that would leak into the function (AIRFLOW*, GCE_METADATA*, GOOGLE_*)."""
    drop = ("AIRFLOW", "GCE_METADATA", "GOOGLE_", "PYTHONDONTWRITEBYTECODE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    # Bytecode caching on, as in a built image: the discarded first start compiles, the measured ones do not.
    keep = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    gcloud = workdir / "gcloud-empty"
    gcloud.mkdir(parents=True, exist_ok=True)
    return {**keep, "CLOUDSDK_CONFIG": str(gcloud), **extra}


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


class Served:
    """One ``functions-framework --target T --source S`` process group, stdout/stderr in a log file."""

    def __init__(self, source: Path, target: str, env: Mapping[str, str], workdir: Path) -> None:
        self.source = source
        self.target = target
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/"
        self.env = clean_env(env, workdir)
        self.log_path = workdir / f"{target}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.port_open_s = 0.0

    def __enter__(self) -> Served:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, wait: bool = True) -> None:
        cmd = [
            str(Path(sys.executable).with_name("functions-framework")),
            f"--target={self.target}",
            "--signature-type=cloudevent",
            f"--source={self.source}",
            f"--host={HOST}",
            f"--port={self.port}",
        ]
        with self.log_path.open("ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait_port()

    def wait_port(self) -> float:
        """Seconds from process start until the port accepted a connection."""
        assert self.proc is not None
        deadline = self.started_at + START_DEADLINE_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} exited with {self.proc.returncode}:\n{self.tail()}")
            if _port_open(self.port):
                self.port_open_s = time.monotonic() - self.started_at
                return self.port_open_s
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"{self.target} did not open port {self.port} in {START_DEADLINE_S:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGINT)  # gunicorn's quick shutdown; SIGTERM waits for workers
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def pids(self) -> tuple[int, list[int]]:
        """The gunicorn master (the process we started) and its workers (its children)."""
        assert self.proc is not None
        return self.proc.pid, children(self.proc.pid)


class Endpoint:
    """``python -m bench.endpoint`` in its own process: the HTTPS Airflow-like server."""

    def __init__(self, cert: Path, key: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"https://{HOST}:{self.port}"
        self.cert, self.key = cert, key
        self.log_path = workdir / "endpoint.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Endpoint:
        cmd = [
            sys.executable,
            "-m",
            "bench.endpoint",
            f"--port={self.port}",
            f"--cert={self.cert}",
            f"--key={self.key}",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_DEADLINE_S
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the HTTPS endpoint did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def children(pid: int) -> list[int]:
    """Child pids, from /proc/<pid>/task/*/children, or by scanning /proc when that file is not available."""
    found: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
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


@dataclass(frozen=True)
class Memory:
    """Peak RSS (VmHWM) of the gunicorn master and its worker(s), and their summed PSS now, in MiB."""

    master_hwm_mb: float
    worker_hwm_mb: float
    pss_total_mb: float


def _status_kb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return float(line.split()[1])
    return 0.0


def _pss_kb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def memory(served: Served) -> Memory:
    master, workers = served.pids()
    return Memory(
        master_hwm_mb=_status_kb(master, "VmHWM") / 1024,
        worker_hwm_mb=max((_status_kb(w, "VmHWM") for w in workers), default=0.0) / 1024,
        pss_total_mb=sum(_pss_kb(p) for p in [master, *workers]) / 1024,
    )


def cpu_seconds(served: Served) -> float:
    """User + system CPU time used so far by the gunicorn master and its workers."""
    master, workers = served.pids()
    return process_cpu_seconds(master, *workers)


def process_cpu_seconds(*pids: int) -> float:
    """User + system CPU time used so far by these processes (their own threads included, not their children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / os.sysconf("SC_CLK_TCK")
