"""A fake clock: sleeping moves its time forward at once (retry tests take no real time), and its wall clock is
whatever the test sets, so no test depends on today's date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

DEFAULT_WALL = datetime(2030, 1, 1, tzinfo=UTC)


class FakeClock:
    """Satisfies ``dagtrigger.clock.Clock``; ``slept`` lists every wait the code asked for, in seconds.

    ``wall`` is the wall-clock time (aware UTC); ``advance`` and ``sleep`` move both clocks together."""

    def __init__(self, start: float = 1000.0, wall: datetime = DEFAULT_WALL) -> None:
        self.mono = start
        self.wall = wall
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)

    def set(self, wall: datetime) -> None:
        """Move the wall clock to ``wall`` (forward or back: a test of clock skew), the monotonic one by as much
        forward as the wall moved (never back)."""
        self.mono += max(0.0, (wall - self.wall).total_seconds())
        self.wall = wall
