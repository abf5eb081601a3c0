"""Every event of a load run accounted for, from what the servers recorded (Airflow's runs, the dead letters), and
the numbers of the run: throughput, latency, Airflow's own ceiling, event → first task running; a Markdown table.

An event is *lost* when it ended with neither a run nor a dead letter after all its redeliveries; a *duplicate* is a
run (or dead letter) beyond the first for one event. Both must be 0.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from loadtest.burst import BurstResult
from loadtest.deliveries import LoadEvent, key_from_conf, key_from_dead_letter

SETTLE_S = 15.0  # after the burst, wait at most this long for late runs / dead letters (answers the client gave up on)
NAN = float("nan")


@dataclass(frozen=True)
class Tally:
    """Every event of one scenario accounted for. ``ok`` means nothing lost and nothing doubled."""

    scenario: str
    sent: int  # deliveries: events plus their duplicate copies
    distinct: int
    poisoned: int  # events that can only end as a dead letter
    requests: int  # HTTP requests, redeliveries included
    runs: int
    dead_letters: int
    duplicates: int  # runs (or dead-letter records) beyond one per event
    lost: int  # events with neither a run nor a dead letter
    run_and_dead_letter: int  # events with both (must be 0 here: poison events can never run)
    answers_2xx: int
    answers_4xx: int
    answers_5xx: int
    no_answer: int  # timeouts, resets, refused connections
    gave_up: int  # deliveries still unacknowledged after max_redeliveries (not lost if the event has a run)
    events_per_s: float
    p50_ms: float
    p99_ms: float
    wall_s: float
    injected: str = ""  # what the fault injector did, e.g. "503×412 hang-200×33"
    notes: str = ""
    function_cpu_ms: float = float("nan")  # CPU of the function's process group per delivery
    airflow_cpu_ms: float = float("nan")  # CPU of the real Airflow's process group per delivery (nan: the fake)
    client_cpu_ms: float = float("nan")  # CPU of this process (client threads, and the fake Airflow) per delivery
    loadavg: str = ""  # the machine's 1-minute load average before and after: other work shares the CPUs
    instances: int = 1  # function processes the deliveries were spread over
    concurrency: int = 0  # client threads
    max_in_flight: int = 0  # AIRFLOW_MAX_IN_FLIGHT of each instance (0: not set)
    airflow: str = ""  # e.g. "3.3.2 postgres scheduler", or "fake"
    airflow_ceiling_per_s: float = NAN  # trigger POSTs/s straight to Airflow, same concurrency, same run
    to_running_p50_s: float = NAN  # event first sent → its run's first task instance running (scheduler only)
    to_running_p99_s: float = NAN
    to_running_measured: int = 0  # runs whose first task had started when read

    @property
    def events(self) -> int:
        """Deliveries sent (distinct events plus their duplicate copies): the JSON's ``events``."""
        return self.sent

    @property
    def to_running(self) -> str:
        """Event → first task running, for the table ("-" when no scheduler ran)."""
        if self.to_running_measured == 0:
            return "-"
        return f"{self.to_running_p50_s:.1f}/{self.to_running_p99_s:.1f} ({self.to_running_measured})"

    @property
    def of_ceiling(self) -> float:
        """Throughput as a fraction of Airflow's own ceiling (nan when no ceiling was measured)."""
        return self.events_per_s / self.airflow_ceiling_per_s if self.airflow_ceiling_per_s > 0 else NAN

    def as_json(self) -> dict[str, Any]:
        """One object per scenario, the fields issue 11 asks for first, then everything else."""
        first = {
            "scenario": self.scenario,
            "events": self.events,
            "distinct": self.distinct,
            "runs": self.runs,
            "dead_letters": self.dead_letters,
            "duplicates": self.duplicates,
            "lost": self.lost,
            "events_per_s": self.events_per_s,
            "airflow_ceiling_per_s": self.airflow_ceiling_per_s,
            "of_ceiling": self.of_ceiling,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "to_running_p50_s": self.to_running_p50_s,
            "to_running_p99_s": self.to_running_p99_s,
        }
        rest = {f: getattr(self, f) for f in self.__dataclass_fields__ if f not in first}
        return {**first, **rest, "ok": self.ok}

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and self.run_and_dead_letter == 0 and not self.notes


def percentile(values: Sequence[float], q: int) -> float:
    """The q-th percentile (inclusive method); nan for no values."""
    if not values:
        return NAN
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _percentile_ms(values: Sequence[float], q: int) -> float:
    return percentile(values, q) * 1000


def tally(
    scenario: str,
    events: Sequence[LoadEvent],
    result: BurstResult,
    run_confs: Sequence[Mapping[str, Any]],
    dead_letters: Sequence[Mapping[str, Any]],
    injected: str = "",
) -> Tally:
    keys = {e.key for e in events}
    runs = Counter(k for k in (key_from_conf(c) for c in run_confs) if k in keys)
    letters = Counter(k for k in (key_from_dead_letter(r) for r in dead_letters) if k in keys)
    answers = result.answers()
    notes = [f"chaos failed: {result.chaos_error.strip().splitlines()[-1]}"] if result.chaos_error else []
    unmatched = len(dead_letters) - sum(letters.values())
    if unmatched:
        notes.append(f"{unmatched} dead letters not matched to an event")
    return Tally(
        scenario=scenario,
        sent=len(result.outcomes),
        distinct=len(keys),
        poisoned=sum(1 for e in events if e.poison),
        requests=result.requests,
        runs=sum(runs.values()),
        dead_letters=sum(letters.values()),
        duplicates=sum(n - 1 for n in runs.values()) + sum(n - 1 for n in letters.values()),
        lost=len(keys - set(runs) - set(letters)),
        run_and_dead_letter=len(set(runs) & set(letters)),
        answers_2xx=answers["2xx"],
        answers_4xx=answers["4xx"],
        answers_5xx=answers["5xx"],
        no_answer=answers["none"],
        gave_up=sum(1 for o in result.outcomes if not o.acked),
        events_per_s=len(result.outcomes) / result.wall_s if result.wall_s > 0 else float("nan"),
        p50_ms=_percentile_ms(result.latencies_s, 50),
        p99_ms=_percentile_ms(result.latencies_s, 99),
        wall_s=result.wall_s,
        injected=injected,
        notes="; ".join(notes),
    )


def settle(count: Callable[[], int], quiet_s: float = 1.0, limit_s: float = SETTLE_S) -> int:
    """Wait until ``count()`` stops changing for ``quiet_s`` (runs from answers the client stopped waiting for)."""
    deadline = time.monotonic() + limit_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def group_cpu_s(pgid: int | None) -> float:
    """User + system CPU seconds of the living processes of a process group, from /proc (Linux only)."""
    if pgid is None or not Path("/proc").is_dir():
        return float("nan")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, …, utime (index 11), stime (index 12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Meter:
    """CPU of the function, the real Airflow (if any) and this process, and the load average, at one moment."""

    function_s: float
    airflow_s: float
    client_s: float
    load1: float

    @classmethod
    def read(cls, functions: Sequence[FunctionProcess], airflow: AirflowServer | None = None) -> Meter:
        proc = getattr(airflow, "_proc", None)  # AirflowServer starts its server as a process-group leader
        return cls(
            sum(group_cpu_s(f.proc.pid if f.proc else None) for f in functions),
            group_cpu_s(proc.pid if proc is not None else None),
            time.process_time(),
            os.getloadavg()[0],
        )

    def usage(self, later: Meter, deliveries: int) -> dict[str, Any]:
        """Tally fields: CPU ms per delivery between two readings."""
        per = 1000 / max(1, deliveries)
        return {
            "function_cpu_ms": (later.function_s - self.function_s) * per,
            "airflow_cpu_ms": (later.airflow_s - self.airflow_s) * per,
            "client_cpu_ms": (later.client_s - self.client_s) * per,
            "loadavg": f"{self.load1:.1f}→{later.load1:.1f}",
        }


COLUMNS = (
    ("scenario", "scenario", "{}"),
    ("inst", "instances", "{}"),
    ("events", "sent", "{}"),
    ("distinct", "distinct", "{}"),
    ("requests", "requests", "{}"),
    ("runs", "runs", "{}"),
    ("dead letters", "dead_letters", "{}"),
    ("duplicates", "duplicates", "{}"),
    ("lost", "lost", "{}"),
    ("2xx", "answers_2xx", "{}"),
    ("4xx", "answers_4xx", "{}"),
    ("5xx", "answers_5xx", "{}"),
    ("no answer", "no_answer", "{}"),
    ("events/s", "events_per_s", "{:.1f}"),
    ("ceiling/s", "airflow_ceiling_per_s", "{:.1f}"),
    ("÷ceiling", "of_ceiling", "{:.2f}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("wall s", "wall_s", "{:.1f}"),
    ("to running p50/p99 s", "to_running", "{}"),
    ("faults injected", "injected", "{}"),
)


def format_table(tallies: Sequence[Tally]) -> str:
    """A Markdown table, one row per scenario (paste-able into a README)."""
    rows = [[title for title, _, _ in COLUMNS]]
    for t in tallies:
        rows.append([fmt.format(getattr(t, attr)) for _, attr, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append("")
    for t in tallies:
        cpu = f"CPU ms per event: function {t.function_cpu_ms:.1f}, client {t.client_cpu_ms:.1f}"
        if t.airflow_cpu_ms == t.airflow_cpu_ms:  # not nan
            cpu += f", Airflow {t.airflow_cpu_ms:.1f}"
        extra = f"; gave up {t.gave_up}, run+dead letter {t.run_and_dead_letter} {t.notes}" if not t.ok else ""
        lines.append(f"- {t.scenario}: {t.poisoned} poison; {cpu}; load average {t.loadavg}{extra}")
    return "\n".join(lines)
