"""The one way devtools start and stop a helper process (Airflow, PostgreSQL, emulators, function processes), so an
interrupted run leaves nothing behind for long.

Every process is started in its own process group and tagged with a marker file in
``${DAGTRIGGER_CACHE:-~/.cache/dagtrigger}/processes/``: its group, its start time and the process that started it
(the owner). The first start in a later session reaps the leftovers: the groups whose owner is gone. Nothing else
is ever signalled: a marker whose process has since exited, or whose pid now belongs to another program (its start
time differs), is only removed, and a live owner's processes are left alone (a parallel test run, a kept demo).

Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

STOP_TIMEOUT_S = 20.0
_REAP_TERM_S = 5.0


def cache_dir() -> Path:
    """Where venvs, templates and process markers live; read on each call so tests can point it elsewhere."""
    configured = os.environ.get("DAGTRIGGER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dagtrigger"


def markers_dir() -> Path:
    return cache_dir() / "processes"


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), None if it is gone.

    A pid plus its start time names one process for good: a reused pid has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def _group_of_live(pid: int) -> int | None:
    """The process group of ``pid``, None if it is gone or a zombie (dead, waiting for its parent to reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[2])


def group_members(pgid: int) -> list[int]:
    """Every live (not zombie) process in process group ``pgid``."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _group_of_live(int(entry.name)) == pgid
    ]


@dataclass(frozen=True)
class Marker:
    """A group we started: its leader (pid = pgid) and the process that started it, each with its start time."""

    pgid: int
    ticks: int
    owner: int
    owner_ticks: int
    what: str
    remove: tuple[str, ...] = ()  # directories to delete once the group is gone (a cluster's data)

    @property
    def path(self) -> Path:
        return markers_dir() / f"{self.pgid}-{self.ticks}.json"

    def owner_alive(self) -> bool:
        return start_ticks(self.owner) == self.owner_ticks

    def leader_ours(self) -> bool | None:
        """True: the leader runs and is ours; False: its pid now names another process; None: it exited."""
        ticks = start_ticks(self.pgid)
        return None if ticks is None else ticks == self.ticks


_lock = threading.Lock()
_reaped_in: int | None = None  # the pid that last reaped (a forked child reaps again: it is another owner)


def tag(pid: int, what: str, remove: Sequence[Path] = ()) -> Marker | None:
    """Write the marker of a group leader we just started (``pid`` leads its group); None if it already exited."""
    ticks = start_ticks(pid)
    owner = os.getpid()
    owner_ticks = start_ticks(owner)
    if ticks is None or owner_ticks is None:
        return None
    marker = Marker(pid, ticks, owner, owner_ticks, what, tuple(str(path) for path in remove))
    marker.path.parent.mkdir(parents=True, exist_ok=True)
    staged = marker.path.with_suffix(".tmp")
    staged.write_text(json.dumps(marker.__dict__))
    os.replace(staged, marker.path)
    return marker


def untag(pid: int) -> None:
    """Forget the marker of a group we stopped ourselves."""
    with contextlib.suppress(OSError):
        for path in markers_dir().glob(f"{pid}-*.json"):
            path.unlink(missing_ok=True)


def _read(path: Path) -> Marker | None:
    try:
        data = json.loads(path.read_text())
        return Marker(**{**data, "remove": tuple(data.get("remove", ()))})
    except (OSError, ValueError, TypeError):
        return None


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def reap_leftovers() -> list[Marker]:
    """Stop the groups left by sessions that ended without stopping them; returns the markers that were reaped.

    A group is signalled only when its owner is gone and either its leader is the very process we started (same
    start time) or its leader exited and members of the group remain (Linux does not hand out a pid that still
    names a process group, so those members are still ours)."""
    reaped = []
    with contextlib.suppress(OSError):
        paths = sorted(markers_dir().glob("*.json"))
        for path in paths:
            marker = _read(path)
            if marker is None:
                path.unlink(missing_ok=True)
                continue
            if marker.owner_alive():
                continue
            ours = marker.leader_ours()
            if ours is False or (ours is None and not group_members(marker.pgid)):
                path.unlink(missing_ok=True)  # nothing of ours runs under that pid any more
                for directory in marker.remove:
                    shutil.rmtree(directory, ignore_errors=True)
                continue
            print(f"[devtools] stopping a leftover {marker.what} (process group {marker.pgid})", file=sys.stderr)
            _signal_group(marker.pgid, signal.SIGTERM)
            deadline = time.monotonic() + _REAP_TERM_S
            while group_members(marker.pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            _signal_group(marker.pgid, signal.SIGKILL)
            path.unlink(missing_ok=True)
            for directory in marker.remove:
                shutil.rmtree(directory, ignore_errors=True)
            reaped.append(marker)
    return reaped


def reap_once() -> None:
    """Reap the leftovers before the first process this session starts."""
    global _reaped_in
    with _lock:
        if _reaped_in != os.getpid():
            _reaped_in = os.getpid()
            reap_leftovers()


def spawn(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    stdout: IO[bytes] | int | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new process group (so it can be stopped as a whole, forks included) and tag
    it; stdin is closed and stderr goes with stdout."""
    reap_once()
    proc = subprocess.Popen(
        [str(part) for part in cmd],
        env=None if env is None else dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    tag(proc.pid, what)
    return proc


def stop_group(
    proc: subprocess.Popen[bytes],
    *,
    graceful: bool = True,
    first: int = signal.SIGTERM,
    grace_s: float = STOP_TIMEOUT_S,
) -> None:
    """Signal the group ``proc`` leads: ``first`` (SIGTERM) and up to ``grace_s`` for it to exit if graceful, then
    SIGKILL to whatever is left of the group (workers can outlive their master); the marker goes with it."""
    pgid = proc.pid
    if graceful:
        _signal_group(pgid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    _signal_group(pgid, signal.SIGKILL)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"process {pgid} did not exit after SIGKILL") from None
    finally:
        untag(pgid)
