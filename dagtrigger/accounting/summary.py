"""The counts of one sweep, per (object version, route) pair, and how they read as JSON and text.

``missing`` counts what was found missing before the sweep acted; of those, ``triggered`` were created (or, for a
batched route, recorded as members), ``failed`` could not be, and the ones a live redelivery or another sweep created
first (Airflow answered 409) are counted in ``present`` too, as ``raced``. So matched = present + dead_lettered +
missing - raced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 50  # failures and missing pairs shown by name in the summary


@dataclass
class Tally:
    """Counters shared by a sweep's workers (updated under a lock); ``as_json`` is the summary."""

    objects_listed: int = 0
    outside_interval: int = 0
    matched: int = 0
    present: int = 0
    pending: int = 0
    dead_lettered: int = 0
    ignored: int = 0
    missing: int = 0
    triggered: int = 0
    raced: int = 0
    failed: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    missing_pairs: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for key, n in counts.items():
                setattr(self, key, getattr(self, key) + n)

    def note_missing(self, uri: str, route: str, run_id: str) -> None:
        with self._lock:
            self.missing += 1
            if len(self.missing_pairs) < SAMPLES:
                self.missing_pairs.append({"object": uri, "route": route, "run_id": run_id})

    def note_failure(self, uri: str, route: str, reason: str) -> None:
        with self._lock:
            self.failed += 1
            if len(self.failures) < SAMPLES:
                self.failures.append({"object": uri, "route": route, "reason": reason[:300]})

    def counts(self) -> dict[str, int]:
        keys = ("objects_listed", "outside_interval", "matched", "present", "pending", "dead_lettered", "ignored",
                "missing", "triggered", "raced", "failed")  # fmt: skip
        with self._lock:
            return {key: getattr(self, key) for key in keys}


@dataclass(frozen=True)
class Summary:
    """One sweep's result: the counts, the calls it made, and whether it covered its whole interval."""

    counts: dict[str, int]
    airflow_calls: int
    storage_calls: int
    seconds: float
    since: str
    until: str
    dry_run: bool
    complete: bool
    resumed: bool
    cursor: str | None
    listings: tuple[str, ...]
    unswept: tuple[dict[str, str], ...]
    failures: tuple[dict[str, str], ...]
    missing_pairs: tuple[dict[str, str], ...]
    refused_records: tuple[dict[str, str], ...] = ()  # dead letters and members whose seal did not verify

    @property
    def ok(self) -> bool:
        return self.counts["failed"] == 0

    def as_json(self) -> dict[str, Any]:
        return {
            **self.counts,
            "airflow_calls": self.airflow_calls,
            "storage_calls": self.storage_calls,
            "seconds": round(self.seconds, 3),
            "objects_listed_per_s": round(self.counts["objects_listed"] / self.seconds, 1) if self.seconds else None,
            "since": self.since,
            "until": self.until,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "resumed": self.resumed,
            "cursor": self.cursor,
            "listings": list(self.listings),
            "unswept": list(self.unswept),
            "failures": list(self.failures),
            "missing_sample": list(self.missing_pairs),
            "refused_records": list(self.refused_records),
        }

    def text(self) -> str:
        c = self.counts
        verb = "would send" if self.dry_run else "triggered"
        done = c["missing"] if self.dry_run else c["triggered"]
        lines = [
            f"sweep {self.since} → {self.until}{' (dry run)' if self.dry_run else ''}: "
            f"{c['objects_listed']} objects listed, {c['matched']} (object, route) pairs matched: "
            f"{c['present']} present, {c['dead_lettered']} dead-lettered, {c['missing']} missing "
            f"({verb} {done}, {c['raced']} raced, {c['failed']} failed), {c['ignored']} ignored",
            f"calls: {self.airflow_calls} to Airflow, {self.storage_calls} to Cloud Storage, in {self.seconds:.1f} s",
        ]
        if not self.complete:
            lines.append(f"stopped by the time budget; the next sweep continues from {self.cursor or '(no cursor)'}")
        lines += [f"not swept: route {u['route']!r}: {u['reason']}" for u in self.unswept]
        lines += [
            f"not counted (its upload counts as missing): {r['object']}: {r['reason']}" for r in self.refused_records
        ]
        return "\n".join(lines)
