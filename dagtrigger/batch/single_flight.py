"""Sharing concurrent calls inside one process: one POST per batch run, one state read per burst of late members.

Bounded everywhere: remembered keys are capped, and a waiter whose leader is slow (or failed) makes its own call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from ..clock import SYSTEM_CLOCK, Clock

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.ok = False


class SingleFlight(Generic[K, T]):
    """At most one ``call`` per key at a time in this process; concurrent callers share its result, and a result
    that ``keep`` accepts is remembered (the last ``capacity`` keys), so later callers do not call at all.

    A waiter whose leader takes longer than ``wait_s`` (or raised) makes its own call: bounded, never stuck."""

    def __init__(self, keep: Callable[[T], bool], capacity: int = 4096, wait_s: float = 60.0) -> None:
        self._keep = keep
        self._capacity = capacity
        self._wait_s = wait_s
        self._lock = threading.Lock()
        self._flights: dict[K, _Flight[T]] = {}
        self._known: OrderedDict[K, T] = OrderedDict()

    def known(self, key: K) -> T | None:
        with self._lock:
            return self._known.get(key)

    def remember(self, key: K, result: T) -> None:
        with self._lock:
            self._known[key] = result
            self._known.move_to_end(key)
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)

    def run(self, key: K, call: Callable[[], T]) -> tuple[T, bool]:
        """(result, whether this caller made the call)."""
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key], False
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            if flight.done.wait(self._wait_s) and flight.ok:
                return flight.result, False  # type: ignore[return-value]
            return call(), True
        try:
            result = call()
            flight.result, flight.ok = result, True
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()
        if self._keep(result):
            self.remember(key, result)
        return result, True


class _Read(Generic[T]):
    def __init__(self, started: float) -> None:
        self.started = started
        self.done = threading.Event()
        self.value: T | None = None
        self.ok = False


class FreshRead(Generic[K, T]):
    """Shares one read among concurrent callers that each need a value read *after* a moment of their own.

    A caller passes ``after`` (e.g. when its member write finished); it gets the result of a read that was sent at or
    after that moment — an in-flight one it joins, or a finished one — else it starts a new read. So a burst of members
    arriving after a window closed costs about one state read per read latency, never a stale answer."""

    def __init__(self, capacity: int = 4096, wait_s: float = 60.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._capacity = capacity
        self._wait_s = wait_s
        self._clock = clock
        self._lock = threading.Lock()
        self._latest: OrderedDict[K, _Read[T]] = OrderedDict()

    def read(self, key: K, after: float, fetch: Callable[[], T]) -> tuple[T, bool]:
        """(value, whether this caller fetched it). ``fetch``'s exceptions reach the caller that fetched."""
        with self._lock:
            entry = self._latest.get(key)
            shared = entry is not None and entry.started >= after and (entry.ok or not entry.done.is_set())
            if not shared or entry is None:
                entry = _Read(self._clock.monotonic())
                self._latest[key] = entry
                self._latest.move_to_end(key)
                while len(self._latest) > self._capacity:
                    self._latest.popitem(last=False)
        if shared:
            if entry.done.wait(self._wait_s) and entry.ok:
                return entry.value, False  # type: ignore[return-value]
            return fetch(), True
        try:
            entry.value = fetch()
            entry.ok = True
        finally:
            entry.done.set()
        return entry.value, True
