"""The CPU split of a load run (``--split-cpus``): Airflow on some CPUs, the client and the function instances on the
others, for Airflow's ceiling and for the burst alike.

On one machine the function instances and the client take CPU from the cores Airflow's API server and PostgreSQL
need, during the burst but not while the ceiling (direct POSTs) is measured, so "÷ ceiling" mixes the function's
CPU into Airflow's rate. On Cloud Run the function runs on its own instances. With the split, Airflow has the same
CPUs in both measurements and the ratio compares only the path: what the function lets through of what Airflow can
take. Affinity is set on every thread of every process in Airflow's process groups (new processes and threads
inherit it) and on every thread of this process (the client's threads, and the function processes it starts,
inherit that).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools import processes
from devtools.localairflow import AirflowServer


def available() -> set[int]:
    return set(os.sched_getaffinity(0))


def split(cpus: Iterable[int]) -> tuple[set[int], set[int]]:
    """(Airflow's, the function side's): the first half to Airflow (rounded down, at least one), the rest to the
    function side. ValueError with fewer than 2 CPUs."""
    ordered = sorted(cpus)
    if len(ordered) < 2:
        raise ValueError(f"--split-cpus needs at least 2 CPUs, this process may use {len(ordered)}")
    half = max(1, len(ordered) // 2)
    return set(ordered[:half]), set(ordered[half:])


def _threads(pid: int) -> list[int]:
    try:
        return [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def pin(pids: Iterable[int], cpus: set[int]) -> int:
    """Set every thread of ``pids`` to ``cpus``; returns how many threads were set (gone ones are skipped)."""
    done = 0
    for pid in pids:
        for tid in _threads(pid):
            try:
                os.sched_setaffinity(tid, cpus)
                done += 1
            except (ProcessLookupError, PermissionError):
                continue
    return done


def _parents() -> dict[int, int]:
    """pid → parent pid, for every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return found


def with_descendants(pids: Iterable[int]) -> set[int]:
    """``pids`` and every process descended from them (PostgreSQL's backends leave the postmaster's group with
    setsid(), so a group alone misses them)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = list(pids)
    while todo:  # bounded: each pid is visited once
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def pin_groups(groups: Iterable[int], cpus: set[int]) -> int:
    """Every thread of every live process in the process groups ``groups``, and of their descendants."""
    return pin(with_descendants(pid for pgid in groups for pid in processes.group_members(pgid)), cpus)


@contextmanager
def this_process_on(cpus: set[int]) -> Iterator[None]:
    """Every thread of this process on ``cpus`` while the block runs, restored afterwards (processes started in the
    block keep ``cpus``)."""
    before = os.sched_getaffinity(0)
    pin([os.getpid()], cpus)
    try:
        yield
    finally:
        pin([os.getpid()], before)


def affinity(pid: int) -> set[int]:
    """The CPUs ``pid`` (its main thread) may run on."""
    return set(os.sched_getaffinity(pid)) if Path(f"/proc/{pid}").exists() else set()


@contextmanager
def split_for(airflow: AirflowServer) -> Iterator[str]:
    """Airflow's processes on the first half of this process's CPUs, this process (and what it starts) on the rest,
    while the block runs; yields a one-line description for the run's notes."""
    airflow_cpus, function_cpus = split(available())
    threads = pin_groups(airflow.process_groups(), airflow_cpus)
    try:
        with this_process_on(function_cpus):
            yield (
                f"CPUs split: Airflow and PostgreSQL on {sorted(airflow_cpus)} ({threads} threads), "
                f"client and functions on {sorted(function_cpus)}"
            )
    finally:
        pin_groups(airflow.process_groups(), available() | airflow_cpus)
