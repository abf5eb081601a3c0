"""Where dead letters live: the ``DEAD_LETTER_URI`` setting and the object names of records.

``<prefix>/<YYYY/MM/DD>/<dag_id>/<run_id>.json``: one object per (DAG, run id), in the folder of the day it was first
recorded, so listing by day and DAG needs no index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote, unquote

from ..exceptions import ConfigError
from .record import DeadLetter, _sort_time, parse_time

ENV_VAR = "DEAD_LETTER_URI"
EXAMPLE_URI = "gs://my-project-dagtrigger/dead-letters"
# How far back a re-failing event's first record can be: Pub/Sub redelivers for up to 7 days, Eventarc for 24 h.
LOOKBACK_DAYS = 7
MAX_PREFIX_BYTES = 500  # object names are ≤ 1,024 bytes: prefix + 11 (date) + ≤ 250 (DAG) + ≤ 250 (run) + 7
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_DAY = re.compile(r"^\d{4}/\d{2}/\d{2}$")


def parse_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/prefix`` → (bucket, prefix without slashes at either end; "" for the bucket root)."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{ENV_VAR}: {problem} (example: {ENV_VAR}={EXAMPLE_URI})")

    value = uri.strip()
    if not value:
        raise bad("is empty: the gs://bucket/prefix where dead letters are written")
    if not value.startswith("gs://"):
        raise bad(f"{value[:100]!r} must start with gs://")
    bucket, _, prefix = value[len("gs://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or any(len(part) > 63 for part in bucket.split(".")):
        raise bad(f"{bucket[:100]!r} is not a bucket name (3-63 lowercase letters, digits, '-', '_' or '.')")
    prefix = prefix.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise bad("the prefix must not contain empty, '.' or '..' segments")
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix) or any(c in prefix for c in "*?[]#"):
        raise bad("the prefix must not contain control characters, wildcards or '#'")
    if len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise bad(f"the prefix is over {MAX_PREFIX_BYTES} bytes")
    return bucket, prefix


@dataclass(frozen=True)
class NameParts:
    day: date
    dag_id: str
    run_id: str


def _component(text: str) -> str:
    """One path segment: [A-Za-z0-9_.~-] stays as is (every valid DAG and run id); anything else is %-encoded."""
    if not text:
        raise ValueError("DAG id and run id must not be empty in a dead-letter name")
    encoded = quote(text, safe="")
    return {".": "%2E", "..": "%2E%2E"}.get(encoded, encoded)


def object_name(record: DeadLetter, prefix: str = "") -> str:
    """``<prefix>/<YYYY/MM/DD of recorded_at>/<dag_id>/<run_id>.json``: one object per (DAG, run id), in the folder
    of the day it was first recorded, so a redelivered event that fails again updates the same object."""
    return _name(prefix, _sort_time(record.recorded_at).date(), record.dag_id, record.run_id)


def _name(prefix: str, day: date, dag_id: str, run_id: str) -> str:
    head = f"{prefix}/" if prefix else ""
    return f"{head}{day:%Y/%m/%d}/{_component(dag_id)}/{_component(run_id)}.json"


def parse_name(name: str, prefix: str = "") -> NameParts | None:
    """The inverse of ``object_name``; None for objects under the prefix that are not dead letters."""
    head = f"{prefix}/" if prefix else ""
    if not name.startswith(head) or not name.endswith(".json"):
        return None
    parts = name[len(head) : -len(".json")].split("/")
    if len(parts) != 5 or not _DAY.match("/".join(parts[:3])) or not parts[3] or not parts[4]:
        return None
    try:
        day = date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None
    return NameParts(day, unquote(parts[3]), unquote(parts[4]))


def candidate_days(record: DeadLetter, lookback_days: int = LOOKBACK_DAYS) -> tuple[date, ...]:
    """The days, newest first, whose folder may already hold this (DAG, run id): from the record's day back to the
    event's own day (it cannot have failed before it happened), at most ``lookback_days``; an event without a time
    (a webhook) looks back one day."""
    newest = _sort_time(record.recorded_at).date()
    oldest = newest - timedelta(days=1)
    if record.event_time:
        try:
            oldest = min(parse_time(record.event_time).date(), newest)
        except ValueError:
            pass
    oldest = max(oldest, newest - timedelta(days=lookback_days))
    return tuple(newest - timedelta(days=i) for i in range((newest - oldest).days + 1))
