"""devtools/processes.py: what an interrupted run started is reaped at the next start, and nothing else ever is.

Each test starts an "owner" interpreter that spawns real processes through devtools.processes and then dies without
stopping them (os._exit, as a killed test run would), then reaps from this process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools import processes


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DAGTRIGGER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes this test starts without devtools.processes: they must survive every reap."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        with_group = proc.pid
        try:
            os.killpg(with_group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def alive(pid: int) -> bool:
    ticks = processes.start_ticks(pid)
    if ticks is None:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"


def run_owner(code: str, *, stay: bool = False) -> tuple[list[int], subprocess.Popen[str] | None]:
    """Run ``code`` in an owner interpreter that prints the pids it spawned; it dies at once unless ``stay``."""
    script = textwrap.dedent(code) + ("\nimport time; time.sleep(60)\n" if stay else "\nimport os; os._exit(0)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    pids = [int(proc.stdout.readline())]
    if not stay:
        proc.wait(timeout=30)
        return pids, None
    return pids, proc


SPAWN_TWO_LEVELS = """
import subprocess
from devtools import processes
proc = processes.spawn(["sh", "-c", "sleep 60 & sleep 60"], what="test group", stdout=subprocess.DEVNULL)
print(proc.pid, flush=True)
"""


def test_a_dead_runs_group_is_reaped_with_its_children() -> None:
    (leader,), _ = run_owner(SPAWN_TWO_LEVELS)
    time.sleep(0.2)
    members = processes.group_members(leader)
    assert leader in members and len(members) >= 2  # sh and its sleeps
    assert len(list(processes.markers_dir().glob("*.json"))) == 1

    reaped = processes.reap_leftovers()

    assert [marker.pgid for marker in reaped] == [leader]
    assert processes.group_members(leader) == []
    assert not any(alive(pid) for pid in members)
    assert list(processes.markers_dir().glob("*.json")) == []


def test_a_live_owners_processes_are_left_alone() -> None:
    (leader,), owner = run_owner(SPAWN_TWO_LEVELS, stay=True)
    assert owner is not None
    try:
        assert processes.reap_leftovers() == []
        assert alive(leader)
    finally:
        owner.kill()
        owner.wait(timeout=10)
    assert [marker.pgid for marker in processes.reap_leftovers()] == [leader]
    assert not alive(leader)


def test_a_reused_pid_is_never_signalled(strangers: list[subprocess.Popen[bytes]]) -> None:
    """A marker naming a pid that now belongs to another program (another start time) is dropped, not acted on."""
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    strangers.append(stranger)
    time.sleep(0.1)
    ticks = processes.start_ticks(stranger.pid)
    assert ticks is not None
    dead_owner = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = processes.Marker(stranger.pid, ticks - 1, int(dead_owner.stdout), 1, "pretend leftover")
    marker.path.parent.mkdir(parents=True, exist_ok=True)
    marker.path.write_text(__import__("json").dumps(marker.__dict__))

    assert processes.reap_leftovers() == []

    assert alive(stranger.pid)
    assert not marker.path.exists()


def test_a_process_that_exited_only_loses_its_marker(tmp_path: Path) -> None:
    leftover = tmp_path / "data"
    leftover.mkdir()
    code = f"""
    import subprocess
    from devtools import processes
    proc = processes.spawn(["true"], what="short", stdout=subprocess.DEVNULL)
    proc.wait()
    processes.tag(__import__("os").getpid(), "me", remove=[{str(leftover)!r}])
    print(proc.pid, flush=True)
    """
    run_owner(code)
    assert len(list(processes.markers_dir().glob("*.json"))) == 2
    assert processes.reap_leftovers() == []  # nothing ran any more: nothing signalled
    assert list(processes.markers_dir().glob("*.json")) == []
    assert not leftover.exists()  # its directory went with it


def test_a_stopped_group_leaves_no_marker() -> None:
    proc = processes.spawn(["sleep", "60"], what="stopped", stdout=subprocess.DEVNULL)
    assert len(list(processes.markers_dir().glob("*.json"))) == 1
    processes.stop_group(proc, grace_s=5)
    assert proc.returncode is not None
    assert list(processes.markers_dir().glob("*.json")) == []
