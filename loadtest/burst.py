"""The load client: sends deliveries to N function instances from many threads and redelivers like Eventarc /
Pub/Sub push (a non-2xx answer or none is sent again, with backoff, a bounded number of times, to the next
instance), while an optional chaos thread injects a fault mid-burst. Every loop is bounded by count and deadline;
only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from loadtest.deliveries import Delivery


@dataclass(frozen=True)
class ClientPolicy:
    """How the platform redelivers: every non-2xx (or no answer within ``request_timeout_s``) is sent again after
    an exponential backoff with jitter, at most ``max_redeliveries`` times; the whole burst stops at ``deadline_s``."""

    max_redeliveries: int = 10
    backoff_s: float = 0.25
    backoff_max_s: float = 4.0
    request_timeout_s: float = 30.0
    deadline_s: float = 900.0

    def backoff(self, redelivery: int, rng: random.Random) -> float:
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** (redelivery - 1)) * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class DeliveryOutcome:
    key: str
    copy: int
    attempts: int
    statuses: tuple[int, ...]  # 0: no answer (timeout, reset, refused)
    acked: bool
    first_sent: float  # wall clock (time.time()) of the first attempt; 0.0 if never sent


@dataclass(frozen=True)
class BurstResult:
    outcomes: tuple[DeliveryOutcome, ...]
    latencies_s: tuple[float, ...]
    wall_s: float
    chaos_error: str | None = None

    @property
    def requests(self) -> int:
        return sum(o.attempts for o in self.outcomes)

    def answers(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for outcome in self.outcomes:
            for status in outcome.statuses:
                counts["none" if status == 0 else f"{status // 100}xx"] += 1
        return counts


class Progress:
    """What the chaos thread sees of the burst: how many deliveries are acknowledged, and whether it is over."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.acked = 0
        self.done = threading.Event()
        self._cond = threading.Condition()

    def ack(self) -> None:
        with self._cond:
            self.acked += 1
            self._cond.notify_all()

    def wait_acked(self, fraction: float, timeout_s: float = 120.0) -> bool:
        """Block until ``fraction`` of the deliveries are acknowledged (False: the burst ended or time ran out)."""
        target = int(self.total * fraction)
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.acked < target and not self.done.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return self.acked >= target

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the burst is over."""
        self.done.wait(seconds)

    def finish(self) -> None:
        self.done.set()
        with self._cond:
            self._cond.notify_all()


Chaos = Callable[[Progress], None]


class _Schedule:
    """Deliveries due now or later (redeliveries after their backoff); ``take`` hands out the next due one."""

    def __init__(self, deliveries: Sequence[Delivery], deadline: float) -> None:
        self._heap: list[tuple[float, int, Delivery, int]] = [(0.0, n, d, 0) for n, d in enumerate(deliveries)]
        self._seq = itertools.count(len(deliveries))
        self._pending = len(deliveries)
        self._cond = threading.Condition()
        self.deadline = deadline

    def take(self) -> tuple[Delivery, int] | None:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._pending == 0 or now >= self.deadline:
                    return None
                if self._heap and self._heap[0][0] <= now:
                    _, _, delivery, attempt = heapq.heappop(self._heap)
                    return delivery, attempt
                wait = (self._heap[0][0] - now) if self._heap else 0.5
                self._cond.wait(max(0.001, min(wait, self.deadline - now, 0.5)))

    def again(self, delivery: Delivery, attempt: int, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), delivery, attempt))
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self._pending -= 1
            if self._pending == 0:
                self._cond.notify_all()


class Request(Protocol):
    """What a connection POSTs: a delivery of the load harness, or a prepared event of the bench."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def body(self) -> bytes: ...


class Connection:
    """One persistent HTTP/1.1 connection per client thread (``http.client``: cheap, so the client leaves the CPUs
    to the function). A stale keep-alive connection is reopened once, without counting as a delivery attempt.
    Used by the load harness and by the bench's event client alike."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None
        self.used = False

    def post(self, delivery: Request) -> int:
        """The HTTP status, or 0 when no answer came (timeout, reset, refused)."""
        for _ in range(2):
            fresh = self.conn is None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            try:
                self.conn.request("POST", "/", body=delivery.body, headers=dict(delivery.headers))
                response = self.conn.getresponse()
                response.read()
                if response.will_close:
                    self.close()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if fresh:
                    return 0
            except (OSError, http.client.HTTPException):
                self.close()
                return 0
        return 0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def burst(
    urls: Sequence[str],
    deliveries: Sequence[Delivery],
    concurrency: int,
    policy: ClientPolicy,
    chaos: Chaos | None = None,
) -> BurstResult:
    """Send every delivery from ``concurrency`` threads to ``urls[delivery.instance]``, redelivering non-2xx
    answers per ``policy`` (attempt k goes to the k-th next instance, as a push subscription picks any instance);
    ``chaos`` runs in its own thread alongside (it injects and clears faults) and is joined before returning."""
    began = time.monotonic()
    schedule = _Schedule(deliveries, began + policy.deadline_s)
    progress = Progress(len(deliveries))
    lock = threading.Lock()
    statuses: dict[tuple[str, int], list[int]] = {}
    acked: set[tuple[str, int]] = set()
    first_sent: dict[tuple[str, int], float] = {}
    latencies: list[float] = []
    chaos_error: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        connections = [Connection(url, policy.request_timeout_s) for url in urls]
        mine: list[float] = []
        try:
            while (item := schedule.take()) is not None:
                delivery, attempt = item
                if attempt == 0 and delivery.twin is not None and concurrency > 1:
                    with contextlib.suppress(threading.BrokenBarrierError):
                        delivery.twin.wait(timeout=5.0)
                ident = (delivery.event.key, delivery.copy)
                if attempt == 0:
                    with lock:
                        first_sent[ident] = time.time()
                sent = time.perf_counter()
                status = connections[(delivery.instance + attempt) % len(connections)].post(delivery)
                if status:
                    mine.append(time.perf_counter() - sent)
                with lock:
                    statuses.setdefault(ident, []).append(status)
                if 200 <= status < 300:
                    with lock:
                        acked.add(ident)
                    progress.ack()
                    schedule.finish()
                elif attempt < policy.max_redeliveries:
                    schedule.again(delivery, attempt + 1, time.monotonic() + policy.backoff(attempt + 1, rng))
                else:
                    schedule.finish()
        finally:
            for connection in connections:
                connection.close()
            with lock:
                latencies.extend(mine)

    def run_chaos() -> None:
        assert chaos is not None
        try:
            chaos(progress)
        except Exception:
            chaos_error.append(traceback.format_exc(limit=5))

    chaos_thread = threading.Thread(target=run_chaos, daemon=True) if chaos else None
    if chaos_thread:
        chaos_thread.start()
    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=policy.deadline_s + policy.request_timeout_s + 10)
    wall = time.monotonic() - began
    progress.finish()
    if chaos_thread:
        chaos_thread.join(timeout=180)
        if chaos_thread.is_alive():
            chaos_error.append("the chaos thread did not finish within 180 s")
    outcomes = tuple(
        DeliveryOutcome(d.event.key, d.copy, len(s), tuple(s), ident in acked, first_sent.get(ident, 0.0))
        for d in deliveries
        for ident in [(d.event.key, d.copy)]
        for s in [statuses.get(ident, [])]
    )
    return BurstResult(outcomes, tuple(latencies), wall, "\n".join(chaos_error) or None)


def paced(urls: Sequence[str], deliveries: Sequence[Delivery], interval_s: float, policy: ClientPolicy) -> BurstResult:
    """Send the deliveries one at a time, ``interval_s`` apart (an event stream, not a burst): what a user waits
    for when Airflow is not busy. Non-2xx answers are redelivered per ``policy`` before moving on."""
    began = time.monotonic()
    rng = random.Random(7)
    connections = [Connection(url, policy.request_timeout_s) for url in urls]
    outcomes = []
    latencies: list[float] = []
    try:
        for delivery in deliveries:
            if time.monotonic() - began > policy.deadline_s:
                break
            first = time.time()
            statuses: list[int] = []
            for attempt in range(policy.max_redeliveries + 1):
                sent = time.perf_counter()
                status = connections[(delivery.instance + attempt) % len(connections)].post(delivery)
                statuses.append(status)
                if status:
                    latencies.append(time.perf_counter() - sent)
                if 200 <= status < 300:
                    break
                time.sleep(policy.backoff(attempt + 1, rng))
            acked = 200 <= statuses[-1] < 300
            outcome = DeliveryOutcome(delivery.event.key, delivery.copy, len(statuses), tuple(statuses), acked, first)
            outcomes.append(outcome)
            time.sleep(interval_s)
    finally:
        for connection in connections:
            connection.close()
    return BurstResult(tuple(outcomes), tuple(latencies), time.monotonic() - began)
