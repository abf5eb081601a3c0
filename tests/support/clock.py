"""A fake clock for the retry policy: sleeping moves its time forward at once, so retry tests take no real time."""

from __future__ import annotations


class FakeClock:
    """Satisfies ``dagtrigger.clock.Clock``; ``slept`` lists every wait the code asked for, in seconds."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
