"""What the bench measures of its processes (memory, CPU), and the HTTPS Airflow-like endpoint it starts.

Function processes, ours and the baselines, are ``devtools.localfunction.FunctionProcess`` (``source=`` for the
baselines' file), the one launcher the demo, the tests and the load harness use too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devtools import processes
from devtools.localfunction import REPO, FunctionProcess
from devtools.ports import HOST, free_port, wait_port_open

START_DEADLINE_S = 30.0


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
            self.proc = processes.spawn(cmd, what="bench HTTPS endpoint", stdout=log, cwd=REPO)
        deadline = time.monotonic() + START_DEADLINE_S
        while not wait_port_open(self.port, 0.0):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"the HTTPS endpoint did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            processes.stop_group(self.proc, graceful=False)


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


def memory(served: FunctionProcess) -> Memory:
    master, workers = served.pids()
    return Memory(
        master_hwm_mb=_status_kb(master, "VmHWM") / 1024,
        worker_hwm_mb=max((_status_kb(w, "VmHWM") for w in workers), default=0.0) / 1024,
        pss_total_mb=sum(_pss_kb(p) for p in [master, *workers]) / 1024,
    )


def cpu_seconds(served: FunctionProcess) -> float:
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
