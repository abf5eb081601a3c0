"""Time, in one place: every reading of the wall clock or the monotonic clock, and every wait, goes through one
``Clock`` that the pipeline hands to each stage (the system clock in production, a fake one in tests, so no test
sleeps or depends on today's date); and how times are normalised to UTC and read from ISO-8601 text."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall clock as an aware UTC datetime: event ages, batch windows, signature and record timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; only differences mean anything."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``datetime.now(UTC)``, ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


def utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, aware ones converted: nothing here depends on a local zone or DST."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_utc(text: str) -> datetime:
    """ISO-8601 text (``Z`` or an offset; none means UTC) as an aware UTC datetime; ValueError if it is not one."""
    return utc(datetime.fromisoformat(text))
