"""The load client: real binary-mode CloudEvents over HTTP, a fixed number per run, ``concurrency`` threads.

Each thread keeps one persistent connection (``http.client``: a tenth of ``requests``' client-side cost, which
matters on a small machine where the client shares the CPUs with the function) and pulls the next event from a
shared counter, so a slow thread never leaves work undone. Every run is bounded by its event count and a deadline.
"""

from __future__ import annotations

import http.client
import itertools
import json
import ssl
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from dagtrigger import send
from loadtest.burst import Connection

REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Prepared:
    """One event, encoded before the clock starts: the headers and body a Cloud Storage trigger would POST."""

    run_key: str
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]


def storage_event(bucket: str, name: str, generation: int, event_id: str) -> Prepared:
    """A Cloud Storage ``finalized`` CloudEvent in binary mode, as Eventarc delivers it (``dagtrigger.send``'s)."""
    outgoing = send.storage_event(
        "", bucket, name, generation=str(generation), size=1024, metadata={"source": "erp"}, event_id=event_id
    )
    return Prepared(event_id, dict(outgoing.headers), outgoing.body, json.loads(outgoing.body))


def storage_events(tag: str, count: int) -> list[Prepared]:
    """``count`` distinct uploads (distinct object versions, so each one is a new DAG run, never a 409)."""
    base = time.time_ns() // 1000
    return [
        storage_event("bench-landing", f"incoming/{tag}/file-{i:06d}.csv", base + i, f"bench-{tag}-{i:06d}")
        for i in range(count)
    ]


@dataclass
class LoadResult:
    concurrency: int
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0  # non-2xx answers and failed requests
    unsent: int = 0  # left undone at the deadline
    wall_s: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def merge(self, other: LoadResult) -> LoadResult:
        """Two runs at the same concurrency as one: all latencies, summed wall time (the runs did not overlap)."""
        statuses = dict(self.statuses)
        for status, n in other.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
        return LoadResult(
            self.concurrency,
            self.latencies_s + other.latencies_s,
            self.errors + other.errors,
            self.unsent + other.unsent,
            self.wall_s + other.wall_s,
            statuses,
        )

    @property
    def done(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        if len(self.latencies_s) == 1:
            return self.latencies_s[0] * 1000
        cuts = statistics.quantiles(self.latencies_s, n=100, method="inclusive")
        return cuts[max(0, min(98, round(q) - 1))] * 1000

    @property
    def throughput(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else float("nan")


class Client:
    """Sends one item and returns the HTTP status; one instance per thread, holding its own connection."""

    def send(self, item: Prepared) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection."""


class EventClient(Client):
    """POSTs the prepared CloudEvent to a function over one persistent connection (the load harness's)."""

    def __init__(self, url: str) -> None:
        self.connection = Connection(url, REQUEST_TIMEOUT_S)

    def send(self, item: Prepared) -> int:
        status = self.connection.post(item)
        if status == 0:
            raise ConnectionError(f"no answer from {self.connection.host}:{self.connection.port}")
        return status

    def close(self) -> None:
        self.connection.close()


def _session(authorization: str | bytes) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = authorization
    return session


class RawPostClient(Client):
    """The trigger POST straight to the endpoint with a pooled ``requests.Session``: what the function does inside."""

    def __init__(self, dag_runs_url: str, token: str, ca_bundle: Path | None) -> None:
        self.url = dag_runs_url
        self.session = _session(f"Bearer {token}")
        self.verify: bool | str = str(ca_bundle) if ca_bundle else True

    def send(self, item: Prepared) -> int:
        body = {"dag_run_id": item.run_key, "conf": item.data, "logical_date": None}
        response = self.session.post(self.url, json=body, verify=self.verify, timeout=REQUEST_TIMEOUT_S)
        return response.status_code

    def close(self) -> None:
        self.session.close()
        self.session = _session(self.session.headers["Authorization"])


def run_load(clients: Sequence[Client], items: Sequence[Prepared], concurrency: int, deadline_s: float) -> LoadResult:
    """Send every item once from ``clients[:concurrency]``, one thread each; stop at the deadline (counted as unsent).

    Clients are passed in, not made here, so their connections (and TLS contexts) live across runs, as the function's
    pooled connections do: a run measures steady state, not connection set-up.
    """
    if len(clients) < concurrency:
        raise ValueError(f"{len(clients)} clients for concurrency {concurrency}")
    result = LoadResult(concurrency, unsent=len(items))
    counter = itertools.count()
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(client: Client) -> None:
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        errors = attempted = 0
        barrier.wait()
        try:
            while time.monotonic() < stop_at[0]:
                index = next(counter)
                if index >= len(items):
                    break
                attempted += 1
                began = time.perf_counter()
                try:
                    status = client.send(items[index])
                except (OSError, http.client.HTTPException, requests.RequestException, ssl.SSLError):
                    client.close()  # a broken connection is not reused; the next send reconnects
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)
                statuses[status] = statuses.get(status, 0) + 1
                if not 200 <= status < 300:
                    errors += 1
        finally:
            with lock:
                result.latencies_s.extend(latencies)
                result.errors += errors
                result.unsent -= attempted
                for status, n in statuses.items():
                    result.statuses[status] = result.statuses.get(status, 0) + n

    threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in clients[:concurrency]]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + deadline_s
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=deadline_s + REQUEST_TIMEOUT_S + 5)
    result.wall_s = time.perf_counter() - began
    return result
