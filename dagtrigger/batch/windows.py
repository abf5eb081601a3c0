"""Batch windows in time: [start, end) aligned to multiples of the window size since the epoch. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..clock import parse_utc, utc
from ..exceptions import BatchError

# An event time further ahead than this is a broken clock: its window's run would wait for a time that never comes.
FUTURE_SKEW_S = 300
# How close to its end a window must be before a member checks whether the run already left ``queued``: the scheduler
# runs on another machine, whose clock may be slightly ahead of ours.
CLOCK_MARGIN_S = 2.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """[start, end) in UTC, aligned to multiples of ``size_s`` since the epoch."""

    start: datetime
    size_s: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.size_s)

    @property
    def label(self) -> str:
        return self.start.strftime("%Y%m%dT%H%M%SZ")

    def next(self) -> Window:
        return Window(self.end, self.size_s)


def window_for(moment: datetime, size_s: int) -> Window:
    """The window containing ``moment``: floor(seconds since the epoch / size) × size, also before 1970.

    Raises BatchError when the window does not fit in years 1-9999 (its first or last seconds).
    """
    whole = (utc(moment) - EPOCH) // timedelta(seconds=1)
    try:
        start = EPOCH + timedelta(seconds=whole - whole % size_s)
        start + timedelta(seconds=size_s)  # the end, computed here so that it cannot fail later
    except OverflowError:
        raise BatchError(f"no window of {size_s} s around {moment.isoformat()} fits in years 1-9999") from None
    return Window(start, size_s)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with ``Z``, microseconds only when there are some."""
    return utc(moment).isoformat().replace("+00:00", "Z")


def event_moment(time: str | None, now: datetime) -> datetime:
    """The event time that places a member: the event's own (CloudEvent time / publish time), else ``now`` (a
    webhook's arrival). Raises BatchError for a time more than FUTURE_SKEW_S ahead of ``now``."""
    if not time:
        return utc(now)
    try:
        moment = parse_utc(time)
    except ValueError:
        return utc(now)
    if moment - utc(now) > timedelta(seconds=FUTURE_SKEW_S):
        raise BatchError(
            f"the event time {time} is more than {FUTURE_SKEW_S} s ahead of this instance's clock; its window would "
            "not close in time (replay it once that time has passed)"
        )
    return moment
