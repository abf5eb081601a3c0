"""Where dead letters live: the ``DEAD_LETTER_URI`` setting and the object names of records.

``<prefix>/<YYYY/MM/DD>/<dag_id>/<run_id>.json``: one object per (DAG, run id), in the folder of the day it was first
recorded, so listing by day and DAG needs no index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import quote, unquote

from ..clock import parse_utc
from ..gcs import parse_setting
from .record import DeadLetter, _sort_time

ENV_VAR = "DEAD_LETTER_URI"
EXAMPLE_URI = "gs://my-project-dagtrigger/dead-letters"
# How far back a re-failing event's first record can be: Pub/Sub redelivers for up to 7 days, Eventarc for 24 h.
LOOKBACK_DAYS = 7
_DAY = re.compile(r"^\d{4}/\d{2}/\d{2}$")


def parse_uri(uri: str) -> tuple[str, str]:
    """``DEAD_LETTER_URI`` → (bucket, prefix); ConfigError naming the variable with a good example."""
    return parse_setting(ENV_VAR, uri, EXAMPLE_URI)


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
            oldest = min(parse_utc(record.event_time).date(), newest)
        except ValueError:
            pass
    oldest = max(oldest, newest - timedelta(days=lookback_days))
    return tuple(newest - timedelta(days=i) for i in range((newest - oldest).days + 1))
