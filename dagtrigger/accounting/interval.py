"""``--since 26h`` / ``--since 2026-11-24T10:00:00Z``: the interval a sweep looks at. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import parse_utc

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(s|m|h|d)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``90m``, ``26h``, ``7d``; ``0`` is none. ValueError with an example otherwise."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: a number and a unit s, m, h or d, such as 26h (or 0)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def parse_moment(text: str, now: datetime) -> datetime:
    """A DURATION before ``now``, or an ISO-8601 TIMESTAMP (UTC when it names no offset)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_utc(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (26h, 7d) nor an ISO-8601 time (2026-11-24T10:00:00Z)"
        ) from None


@dataclass(frozen=True)
class Interval:
    """Object versions created in [since, until) are looked at; ``until`` is already moved back by the settle time."""

    since: datetime
    until: datetime

    def holds(self, moment: datetime) -> bool:
        return self.since <= moment < self.until


def interval(since: str, until: str | None, settle: str, now: datetime) -> Interval:
    """The sweep's interval: objects younger than ``settle`` are left to the live path."""
    start = parse_moment(since, now)
    end = parse_moment(until, now) if until else now
    end = min(end, now - parse_duration(settle))
    if start >= end:
        raise ValueError(f"--since {since} is not before --until/--settle ({end.isoformat()}): nothing to sweep")
    return Interval(start, end)
