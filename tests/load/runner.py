"""Bounded load and fault runs: the function as a real functions-framework process, fed real CloudEvents by a client
that behaves like Eventarc / Pub/Sub push (a non-2xx answer is redelivered, with backoff, a bounded number of times),
then every event accounted for from what the servers recorded: Airflow's runs and the dead letters in Cloud Storage.

    python -m tests.load.runner faults                      # every fault scenario against the fake Airflow
    python -m tests.load.runner faults --only storm503,hang --events 400 --concurrency 16
    python -m tests.load.runner restart                     # real Airflow 3 killed and restarted mid-burst
    python -m tests.load.runner load --events 5000 --concurrency 32 --duplicates 0.1   # real Airflow 3

An event is *lost* when it ended with neither a run nor a dead letter after all its redeliveries; a *duplicate* is a
run (or dead letter) beyond the first for one event. Both must be 0. Every loop here is bounded by a count and a
deadline; only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import heapq
import http.client
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.load.fake_airflow import REFUSE_MARKER, Fault, FaultKind, FaultyAirflow
from tests.support.fakes import FakeMetadataServer
from tests.support.storage_emulator import StorageEmulator, storage_emulator

DAG = "dagtrigger_example"
BUCKET = "load-dead-letters"
FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
MAX_CONF_BYTES = 8192  # an "oversize" poison event carries more than this: failed without a call, dead-lettered
SETTLE_S = 15.0  # after the burst, wait at most this long for late runs / dead letters (answers the client gave up on)
TOKEN_PREFIX = "ya29.fake-access-token"


# ------------------------------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class LoadEvent:
    """One distinct event (one object version, or one Pub/Sub message); ``key`` finds it again in a conf or a record.

    ``poison``: None, ``"oversize"`` (its conf is over MAX_CONF_BYTES: refused by the function itself) or
    ``"refused"`` (the fake Airflow answers 400): both must end as exactly one dead letter.
    """

    index: int
    key: str
    kind: str  # "storage" | "pubsub"
    poison: str | None
    attrs: Mapping[str, str]
    data: Mapping[str, Any]


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def make_events(
    tag: str, count: int, *, pubsub: float = 0.25, poison: float = 0.0, poison_kind: str = "oversize", seed: int = 1
) -> list[LoadEvent]:
    """``count`` distinct events: uploads (a new object version each) and Pub/Sub messages (a new message id each)."""
    rng = random.Random(seed)
    made = []
    for index in range(count):
        key = f"{tag}-{index:06d}"
        bad = poison_kind if rng.random() < poison else None
        metadata: dict[str, str] = {"source": "load"}
        if bad == "oversize":
            metadata["pad"] = "x" * (MAX_CONF_BYTES + 512)
        elif bad == "refused":
            metadata[REFUSE_MARKER] = "true"
        if rng.random() < pubsub:
            message_id = f"{zlib_id(tag)}{index:07d}"
            payload = json.dumps({"load_key": key, "n": index, "metadata": metadata}).encode()
            attrs = {
                "id": message_id,
                "type": PUBLISHED,
                "source": "//pubsub.googleapis.com/projects/load-project/topics/load",
                "time": _now_iso(),
                "specversion": "1.0",
                "datacontenttype": "application/json",
            }
            data: dict[str, Any] = {
                "message": {
                    "data": base64.b64encode(payload).decode(),
                    "messageId": message_id,
                    "publishTime": attrs["time"],
                    "attributes": {"origin": "load"},
                },
                "subscription": "projects/load-project/subscriptions/eventarc-load",
            }
            made.append(LoadEvent(index, key, "pubsub", bad, attrs, data))
            continue
        name = f"load/{tag}/{key}.csv"
        generation = str(1_764_000_000_000_000 + index)
        attrs = {
            "id": f"gcs-{key}",
            "type": FINALIZED,
            "source": "//storage.googleapis.com/projects/_/buckets/load-landing",
            "subject": f"objects/{name}",
            "time": _now_iso(),
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "bucket": "load-landing",
        }
        data = {
            "kind": "storage#object",
            "id": f"load-landing/{name}/{generation}",
            "name": name,
            "bucket": "load-landing",
            "generation": generation,
            "metageneration": "1",
            "contentType": "text/csv",
            "size": "1024",
            "metadata": metadata,
        }
        made.append(LoadEvent(index, key, "storage", bad, attrs, data))
    return made


def zlib_id(text: str) -> str:
    """A short numeric prefix from the run tag, so message ids of different runs never collide."""
    return str(zlib.crc32(text.encode()) % 100_000).zfill(5)


def key_from_conf(conf: Mapping[str, Any]) -> str | None:
    """The event a run was created for, read from its conf (never from the run id, which is what is under test)."""
    if isinstance(conf.get("load_key"), str):
        return str(conf["load_key"])
    name = conf.get("name")
    if isinstance(name, str) and name.startswith("load/") and name.endswith(".csv"):
        return name.rsplit("/", 1)[-1][: -len(".csv")]
    return None


def key_from_dead_letter(record: Mapping[str, Any]) -> str | None:
    """The event a dead letter stands for, read from the event as it was received (``raw``)."""
    data = (record.get("raw") or {}).get("data") or {}
    if isinstance(data.get("name"), str):
        return key_from_conf(data)
    message = data.get("message") or {}
    try:
        payload = json.loads(base64.b64decode(message.get("data") or ""))
    except ValueError:
        return None
    return key_from_conf(payload) if isinstance(payload, dict) else None


# -------------------------------------------------------------------------------------------------------- deliveries


def _percent_encode(value: str) -> str:
    return "".join(c if " " <= c <= "~" and c not in '%"' else "".join(f"%{b:02X}" for b in c.encode()) for c in value)


@dataclass(frozen=True)
class Delivery:
    """One copy of an event as the platform POSTs it. Copy 1 of an upload has a new event id (Cloud Storage sends
    re-notifications so); copy 1 of a message keeps its id (a Pub/Sub redelivery). ``twin``: both copies are
    released at the same moment, so the function handles them concurrently."""

    event: LoadEvent
    copy: int
    headers: Mapping[str, str]
    body: bytes
    twin: threading.Barrier | None = field(default=None, compare=False)


def _encode(event: LoadEvent, copy: int, twin: threading.Barrier | None) -> Delivery:
    attrs = dict(event.attrs)
    if copy and event.kind == "storage":
        attrs["id"] = f"{attrs['id']}-again-{copy}"
    headers, body = to_binary(CloudEvent(attrs, dict(event.data)))
    encoded = {
        str(k): _percent_encode(str(v)) if str(k).lower().startswith("ce-") else str(v) for k, v in headers.items()
    }
    return Delivery(event, copy, encoded, body, twin)


def plan_deliveries(
    events: Sequence[LoadEvent], *, duplicates: float, concurrent: float = 0.5, concurrency: int = 16, seed: int = 2
) -> list[Delivery]:
    """Every event once, plus a second copy of ``duplicates`` of them: ``concurrent`` of those copies are sent at
    the same moment as the first, the others later in the burst (a few hundred deliveries on)."""
    rng = random.Random(seed)
    doubled = rng.sample(range(len(events)), round(len(events) * duplicates))
    together = set(doubled[: round(len(doubled) * concurrent)])
    later = set(doubled) - together
    ordered: list[tuple[float, Delivery]] = []
    for position, event in enumerate(events):
        twin = threading.Barrier(2) if event.index in together else None
        ordered.append((position, _encode(event, 0, twin)))
        if event.index in together:
            ordered.append((position + 0.5, _encode(event, 1, twin)))
        elif event.index in later:
            ordered.append((position + rng.randint(2 * concurrency, 10 * concurrency) + 0.25, _encode(event, 1, None)))
    ordered.sort(key=lambda pair: pair[0])
    return [delivery for _, delivery in ordered]


# ------------------------------------------------------------------------------------------------------------ client


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


class _Connection:
    """One persistent HTTP/1.1 connection per client thread (``http.client``: cheap, so the client leaves the CPUs
    to the function). A stale keep-alive connection is reopened once, without counting as a delivery attempt."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None
        self.used = False

    def post(self, delivery: Delivery) -> int:
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
    url: str, deliveries: Sequence[Delivery], concurrency: int, policy: ClientPolicy, chaos: Chaos | None = None
) -> BurstResult:
    """Send every delivery from ``concurrency`` threads, redelivering non-2xx answers per ``policy``; ``chaos``
    runs in its own thread alongside (it injects and clears faults) and is joined before returning."""
    began = time.monotonic()
    schedule = _Schedule(deliveries, began + policy.deadline_s)
    progress = Progress(len(deliveries))
    lock = threading.Lock()
    statuses: dict[tuple[str, int], list[int]] = {}
    acked: set[tuple[str, int]] = set()
    latencies: list[float] = []
    chaos_error: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        connection = _Connection(url, policy.request_timeout_s)
        mine: list[float] = []
        try:
            while (item := schedule.take()) is not None:
                delivery, attempt = item
                if attempt == 0 and delivery.twin is not None and concurrency > 1:
                    with contextlib.suppress(threading.BrokenBarrierError):
                        delivery.twin.wait(timeout=5.0)
                sent = time.perf_counter()
                status = connection.post(delivery)
                if status:
                    mine.append(time.perf_counter() - sent)
                ident = (delivery.event.key, delivery.copy)
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
        DeliveryOutcome(d.event.key, d.copy, len(s), tuple(s), (d.event.key, d.copy) in acked)
        for d in deliveries
        for s in [statuses.get((d.event.key, d.copy), [])]
    )
    return BurstResult(outcomes, tuple(latencies), wall, "\n".join(chaos_error) or None)


# ------------------------------------------------------------------------------------------------------------- tally


@dataclass(frozen=True)
class Tally:
    """Every event of one scenario accounted for. ``ok`` means nothing lost and nothing doubled."""

    scenario: str
    sent: int  # deliveries: events plus their duplicate copies
    distinct: int
    poisoned: int  # events that can only end as a dead letter
    requests: int  # HTTP requests, redeliveries included
    runs: int
    dead_letters: int
    duplicates: int  # runs (or dead-letter records) beyond one per event
    lost: int  # events with neither a run nor a dead letter
    run_and_dead_letter: int  # events with both (must be 0 here: poison events can never run)
    answers_2xx: int
    answers_4xx: int
    answers_5xx: int
    no_answer: int  # timeouts, resets, refused connections
    gave_up: int  # deliveries still unacknowledged after max_redeliveries (not lost if the event has a run)
    events_per_s: float
    p50_ms: float
    p99_ms: float
    wall_s: float
    injected: str = ""  # what the fault injector did, e.g. "503×412 hang-200×33"
    notes: str = ""
    function_cpu_ms: float = float("nan")  # CPU of the function's process group per delivery
    airflow_cpu_ms: float = float("nan")  # CPU of the real Airflow's process group per delivery (nan: the fake)
    client_cpu_ms: float = float("nan")  # CPU of this process (client threads, and the fake Airflow) per delivery
    loadavg: str = ""  # the machine's 1-minute load average before and after: other work shares the CPUs

    @property
    def ok(self) -> bool:
        return self.duplicates == 0 and self.lost == 0 and self.run_and_dead_letter == 0 and not self.notes


def _percentile_ms(values: Sequence[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0] * 1000
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def tally(
    scenario: str,
    events: Sequence[LoadEvent],
    result: BurstResult,
    run_confs: Sequence[Mapping[str, Any]],
    dead_letters: Sequence[Mapping[str, Any]],
    injected: str = "",
) -> Tally:
    keys = {e.key for e in events}
    runs = Counter(k for k in (key_from_conf(c) for c in run_confs) if k in keys)
    letters = Counter(k for k in (key_from_dead_letter(r) for r in dead_letters) if k in keys)
    answers = result.answers()
    notes = [f"chaos failed: {result.chaos_error.strip().splitlines()[-1]}"] if result.chaos_error else []
    unmatched = len(dead_letters) - sum(letters.values())
    if unmatched:
        notes.append(f"{unmatched} dead letters not matched to an event")
    return Tally(
        scenario=scenario,
        sent=len(result.outcomes),
        distinct=len(keys),
        poisoned=sum(1 for e in events if e.poison),
        requests=result.requests,
        runs=sum(runs.values()),
        dead_letters=sum(letters.values()),
        duplicates=sum(n - 1 for n in runs.values()) + sum(n - 1 for n in letters.values()),
        lost=len(keys - set(runs) - set(letters)),
        run_and_dead_letter=len(set(runs) & set(letters)),
        answers_2xx=answers["2xx"],
        answers_4xx=answers["4xx"],
        answers_5xx=answers["5xx"],
        no_answer=answers["none"],
        gave_up=sum(1 for o in result.outcomes if not o.acked),
        events_per_s=len(result.outcomes) / result.wall_s if result.wall_s > 0 else float("nan"),
        p50_ms=_percentile_ms(result.latencies_s, 50),
        p99_ms=_percentile_ms(result.latencies_s, 99),
        wall_s=result.wall_s,
        injected=injected,
        notes="; ".join(notes),
    )


def settle(count: Callable[[], int], quiet_s: float = 1.0, limit_s: float = SETTLE_S) -> int:
    """Wait until ``count()`` stops changing for ``quiet_s`` (runs from answers the client stopped waiting for)."""
    deadline = time.monotonic() + limit_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return last


def group_cpu_s(pgid: int | None) -> float:
    """User + system CPU seconds of the living processes of a process group, from /proc (Linux only)."""
    if pgid is None or not Path("/proc").is_dir():
        return float("nan")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields: state, ppid, pgrp, …, utime (index 11), stime (index 12)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Meter:
    """CPU of the function, the real Airflow (if any) and this process, and the load average, at one moment."""

    function_s: float
    airflow_s: float
    client_s: float
    load1: float

    @classmethod
    def read(cls, function: FunctionProcess, airflow: AirflowServer | None = None) -> Meter:
        proc = getattr(airflow, "_proc", None)  # AirflowServer starts its server as a process-group leader
        return cls(
            group_cpu_s(function.proc.pid if function.proc else None),
            group_cpu_s(proc.pid if proc is not None else None),
            time.process_time(),
            os.getloadavg()[0],
        )

    def usage(self, later: Meter, deliveries: int) -> dict[str, Any]:
        """Tally fields: CPU ms per delivery between two readings."""
        per = 1000 / max(1, deliveries)
        return {
            "function_cpu_ms": (later.function_s - self.function_s) * per,
            "airflow_cpu_ms": (later.airflow_s - self.airflow_s) * per,
            "client_cpu_ms": (later.client_s - self.client_s) * per,
            "loadavg": f"{self.load1:.1f}→{later.load1:.1f}",
        }


def read_dead_letters(gcs: StorageEmulator, prefix: str) -> list[dict[str, Any]]:
    client = gcs.client()
    return [json.loads(blob.download_as_bytes()) for blob in client.list_blobs(BUCKET, prefix=f"{prefix}/")]


def airflow_run_confs(airflow: AirflowServer) -> list[dict[str, Any]]:
    return [run.get("conf") or {} for run in airflow.list_runs(DAG)]


def airflow_run_count(airflow: AirflowServer) -> int:
    answer = airflow.request("GET", f"{airflow.api_prefix}/dags/{DAG}/dagRuns?limit=1")
    return int(answer.body.get("total_entries", 0)) if isinstance(answer.body, dict) else -1


def format_injected(answers: Mapping[str, int]) -> str:
    faults = {k: v for k, v in sorted(answers.items()) if k not in ("200", "409")}
    return " ".join(f"{k}×{v}" for k, v in faults.items())


# ---------------------------------------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class BurstSpec:
    """The shape of one burst; the defaults are the modest sizes the pytest wrappers use."""

    events: int = 300
    concurrency: int = 16
    duplicates: float = 0.1
    concurrent_duplicates: float = 0.5
    pubsub: float = 0.25
    poison: float = 0.05
    seed: int = 1


@dataclass
class Rig:
    """What scenarios share: a work directory and the Cloud Storage emulator that holds the dead letters."""

    workdir: Path
    gcs: StorageEmulator
    threads: int | None = None  # THREADS for functions-framework (None: its default, 4 per CPU)
    log: Callable[[str], None] = field(default=lambda text: None)

    def env(self, airflow_url: str, prefix: str, **extra: str) -> dict[str, str]:
        env = {
            "AIRFLOW_URI": airflow_url,
            "DAG_ID": DAG,
            "AIRFLOW_AUTH": "none",
            "AIRFLOW_TIMEOUT_SECONDS": "1",
            "AIRFLOW_RETRY_BUDGET_SECONDS": "2",
            "MAX_CONF_BYTES": str(MAX_CONF_BYTES),
            "DEAD_LETTER_URI": f"gs://{BUCKET}/{prefix}",
            **self.gcs.env(),
        }
        if self.threads:
            env["THREADS"] = str(self.threads)
        env.update(extra)
        return env


def _tag(name: str) -> str:
    return f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"


def _fault_steps(airflow: FaultyAirflow, steps: Sequence[tuple[str, float, Fault | None]]) -> Chaos:
    """``(when, amount, fault)`` steps run in order: ``("acked", 0.1, f)`` sets f once 10 % of deliveries are
    acknowledged, ``("after", 3.0, f)`` sets f 3 s after the previous step. The last fault is always cleared."""

    def chaos(progress: Progress) -> None:
        try:
            for when, amount, fault in steps:
                if when == "acked":
                    progress.wait_acked(amount)
                else:
                    progress.sleep(amount)
                airflow.set_fault(fault)
        finally:
            airflow.set_fault(None)

    return chaos


STORM_S = 5.0
TOKEN_OUTAGE_S = 20.0  # longer than google-auth's own metadata retries (5 attempts, ~15 s of backoff)
HANG_S = 2.5  # > AIRFLOW_TIMEOUT_SECONDS=1 of the function: its read times out while the run is being created


def _steps_for(name: str) -> tuple[list[tuple[str, float, Fault | None]], str]:
    """The fault steps of each fake-Airflow scenario, and the poison kind its events carry."""
    status = FaultKind.STATUS
    table: dict[str, tuple[list[tuple[str, float, Fault | None]], str]] = {
        CONTROL: ([], "refused"),
        "storm503": ([("acked", 0.1, Fault(status, 503)), ("after", STORM_S, None)], "oversize"),
        "throttle429": (
            [
                ("acked", 0.1, Fault(status, 429, retry_after="1", share=0.5)),  # honoured in process
                ("after", 2.5, Fault(status, 429, retry_after="30")),  # beyond the budget: answered 503 at once
                ("after", 2.0, None),
            ],
            "oversize",
        ),
        "hang": (
            [
                # The run is created, the answer comes after the function's read timeout: its retry must get 409.
                ("acked", 0.0, Fault(FaultKind.HANG, delay_s=HANG_S, first_attempts=2, share=0.3)),
                # Three late answers outlast the 2 s retry budget: the function answers 503, the client redelivers.
                ("acked", 0.5, Fault(FaultKind.HANG, delay_s=HANG_S, first_attempts=3, share=0.3)),
                ("acked", 0.9, None),
            ],
            "oversize",
        ),
        "reset": (
            [
                ("acked", 0.0, Fault(FaultKind.RESET_BEFORE, first_attempts=2, share=0.5)),
                ("acked", 0.35, Fault(FaultKind.RESET_AFTER, first_attempts=2, share=0.5)),
                # Eight resets in a row exhaust urllib3's attempts: 503 to the client, redelivered, then 409.
                ("acked", 0.7, Fault(FaultKind.RESET_AFTER, first_attempts=8, share=0.2)),
                ("acked", 0.95, None),
            ],
            "refused",
        ),
        "html": (
            [
                ("acked", 0.1, Fault(FaultKind.HTML, 502)),  # a proxy's error page for everything
                ("after", STORM_S, Fault(FaultKind.HTML, 500, first_attempts=2, share=0.5)),  # Airflow 2's page
                ("acked", 0.8, None),
            ],
            "refused",
        ),
    }
    return table[name]


CONTROL = "healthy"  # no fault: the function's own pace, and proof the counting adds up when nothing goes wrong
FAKE_SCENARIOS = ("storm503", "throttle429", "hang", "reset", "token", "html")
DESCRIPTIONS = {
    CONTROL: "control: the fake Airflow answers every call at once, no fault",
    "storm503": f"(a) every trigger call answered 503 for {STORM_S:g} s mid-burst, then recovery",
    "throttle429": "(b) 429 with Retry-After: 1 (half the runs), then Retry-After: 30 (beyond the budget), then ok",
    "hang": f"(c) run created but the answer {HANG_S:g} s late (function read timeout 1 s), 1-3 times per run",
    "reset": "(d) TCP reset before / after the run is created, up to 8 times in a row",
    "restart": "(e) real Airflow 3 SIGKILLed mid-burst and started again (~10 s down)",
    "token": f"(f) AIRFLOW_AUTH=google, the metadata server fails to issue tokens for {TOKEN_OUTAGE_S:g} s mid-burst",
    "html": "(g) HTML error pages (502 from a proxy, 500 from Airflow 2) instead of JSON; poison runs get a 400 page",
    "load": "5,000-event burst against real Airflow 3 (AIRFLOW_MAX_IN_FLIGHT=1)",
}


def run_fake_scenario(
    rig: Rig, name: str, spec: BurstSpec = BurstSpec(), policy: ClientPolicy = ClientPolicy()
) -> Tally:
    """One fault scenario against the fake Airflow (``FAKE_SCENARIOS``)."""
    tag = _tag(name)
    metadata: FakeMetadataServer | None = None
    chaos: Chaos
    with contextlib.ExitStack() as stack:
        if name == "token":
            # Tokens live 300 s, renewed 300 s before expiry: every call fetches one, so the outage bites at once.
            metadata = stack.enter_context(FakeMetadataServer(lifetime_s=300))
            airflow = stack.enter_context(FaultyAirflow(required_token_prefix=TOKEN_PREFIX))
            env = rig.env(airflow.url, tag, AIRFLOW_AUTH="google", **metadata.env())
            poison_kind = "oversize"

            def outage(progress: Progress) -> None:
                assert metadata is not None
                try:
                    progress.wait_acked(0.1)
                    metadata.fail_tokens = True
                    progress.sleep(TOKEN_OUTAGE_S)
                finally:
                    metadata.fail_tokens = False

            chaos = outage

        else:
            airflow = stack.enter_context(FaultyAirflow())
            steps, poison_kind = _steps_for(name)
            env = rig.env(airflow.url, tag)
            chaos = _fault_steps(airflow, steps)
        events = make_events(
            tag, spec.events, pubsub=spec.pubsub, poison=spec.poison, poison_kind=poison_kind, seed=spec.seed
        )
        deliveries = plan_deliveries(
            events, duplicates=spec.duplicates, concurrent=spec.concurrent_duplicates, concurrency=spec.concurrency
        )
        function = stack.enter_context(FunctionProcess("trigger_event", env, rig.workdir))
        rig.log(f"{name}: {len(deliveries)} deliveries of {len(events)} events at concurrency {spec.concurrency}")
        before = Meter.read(function)
        result = burst(function.url, deliveries, spec.concurrency, policy, chaos)
        cpu = before.usage(Meter.read(function), len(deliveries))
        settle(lambda: len(airflow.runs) + len(rig.gcs.objects(BUCKET, f"{tag}/")))
        injected = format_injected(airflow.answers)
        if metadata is not None:
            injected = f"tokens issued {metadata.token_fetches}, refused {metadata.refused_tokens}; {injected}".strip(
                "; "
            )
        confs = [run.conf for run in airflow.created()]
        counted = tally(name, events, result, confs, read_dead_letters(rig.gcs, tag), injected)
        return replace(counted, **cpu)


def run_restart(
    rig: Rig, airflow: AirflowServer, spec: BurstSpec = BurstSpec(), policy: ClientPolicy = ClientPolicy()
) -> Tally:
    """(e) The real Airflow 3 is SIGKILLed once 30 % of the deliveries are acknowledged, then started again."""
    tag = _tag("restart")
    events = make_events(tag, spec.events, pubsub=spec.pubsub, poison=spec.poison, seed=spec.seed)
    deliveries = plan_deliveries(
        events, duplicates=spec.duplicates, concurrent=spec.concurrent_duplicates, concurrency=spec.concurrency
    )
    env = rig.env(airflow.url, tag, AIRFLOW_MAX_IN_FLIGHT="1", AIRFLOW_TIMEOUT_SECONDS="10")
    down: list[float] = []

    def chaos(progress: Progress) -> None:
        progress.wait_acked(0.3)
        began = time.monotonic()
        airflow.kill()
        try:
            progress.sleep(1.0)
        finally:
            airflow.start()
        down.append(time.monotonic() - began)

    with FunctionProcess("trigger_event", env, rig.workdir) as function:
        rig.log(f"restart: {len(deliveries)} deliveries of {len(events)} events at concurrency {spec.concurrency}")
        before = Meter.read(function)
        result = burst(function.url, deliveries, spec.concurrency, policy, chaos)
        cpu = before.usage(Meter.read(function), len(deliveries))
        settle(lambda: airflow_run_count(airflow))
    injected = f"Airflow down {down[0]:.1f} s" if down else "Airflow not restarted"
    counted = tally("restart", events, result, airflow_run_confs(airflow), read_dead_letters(rig.gcs, tag), injected)
    return replace(counted, **{**cpu, "airflow_cpu_ms": float("nan")})  # the restart's own CPU would swamp it


def run_load(
    rig: Rig,
    airflow: AirflowServer,
    spec: BurstSpec = BurstSpec(events=5000, concurrency=32, poison=0.0),
    policy: ClientPolicy = ClientPolicy(),
    max_in_flight: int = 1,
    baseline: int = 0,
) -> Tally:
    """The burst against the real Airflow: afterwards Airflow's runs must equal the distinct events exactly.
    ``baseline``: first time that many POSTs straight to Airflow, the ceiling the function is measured against."""
    tag = _tag("load")
    events = make_events(tag, spec.events, pubsub=spec.pubsub, poison=spec.poison, seed=spec.seed)
    deliveries = plan_deliveries(
        events, duplicates=spec.duplicates, concurrent=spec.concurrent_duplicates, concurrency=spec.concurrency
    )
    env = rig.env(
        airflow.url,
        tag,
        AIRFLOW_MAX_IN_FLIGHT=str(max_in_flight),
        AIRFLOW_TIMEOUT_SECONDS="10",
        AIRFLOW_RETRY_BUDGET_SECONDS="10",
    )
    alone = airflow_alone(airflow, tag, baseline) if baseline else None
    with FunctionProcess("trigger_event", env, rig.workdir) as function:
        rig.log(f"load: {len(deliveries)} deliveries of {len(events)} events at concurrency {spec.concurrency}")
        before = Meter.read(function, airflow)
        result = burst(function.url, deliveries, spec.concurrency, policy)
        cpu = before.usage(Meter.read(function, airflow), len(deliveries))
        settle(lambda: airflow_run_count(airflow))
    threads = rig.threads or (os.cpu_count() or 1) * 4
    setup = f"THREADS={threads} MAX_IN_FLIGHT={max_in_flight}"
    if alone:
        setup += f"; Airflow alone: {alone[0]:.1f} POST/s, p50 {alone[1]:.0f} ms"
    counted = tally("load", events, result, airflow_run_confs(airflow), read_dead_letters(rig.gcs, tag), setup)
    return replace(counted, **cpu)


def airflow_alone(airflow: AirflowServer, tag: str, count: int) -> tuple[float, float]:
    """The ceiling: ``count`` sequential trigger POSTs straight to Airflow (no function), as POST/s and p50 ms.
    Their conf names no load event, so they are never counted as runs of a burst."""
    body = {"conf": {"baseline": True}, "logical_date": None} if airflow.major >= 3 else {"conf": {"baseline": True}}
    path = f"{airflow.api_prefix}/dags/{DAG}/dagRuns"
    took = []
    began = time.monotonic()
    for n in range(count):
        sent = time.monotonic()
        answer = airflow.request("POST", path, {**body, "dag_run_id": f"baseline__{tag}__{n}"})
        if answer.status != 200:
            raise RuntimeError(f"baseline POST answered {answer.status}: {answer.body!r:.300}")
        took.append(time.monotonic() - sent)
    return count / (time.monotonic() - began), statistics.median(took) * 1000


@contextlib.contextmanager
def rig(workdir: Path | None = None, threads: int | None = None, verbose: bool = False) -> Iterator[Rig]:
    """A work directory and a storage emulator (its own process: single-threaded, it must not share our GIL)."""
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dagtrigger-load-")))
        gcs = stack.enter_context(storage_emulator(subprocess_mode=True))
        gcs.create_bucket(BUCKET)

        def log(text: str) -> None:
            if verbose:
                print(f"[load] {text}", file=sys.stderr, flush=True)

        yield Rig(root, gcs, threads, log)


# -------------------------------------------------------------------------------------------------------------- table

COLUMNS = (
    ("scenario", "scenario", "{}"),
    ("events", "sent", "{}"),
    ("distinct", "distinct", "{}"),
    ("requests", "requests", "{}"),
    ("runs", "runs", "{}"),
    ("dead letters", "dead_letters", "{}"),
    ("duplicates", "duplicates", "{}"),
    ("lost", "lost", "{}"),
    ("2xx", "answers_2xx", "{}"),
    ("4xx", "answers_4xx", "{}"),
    ("5xx", "answers_5xx", "{}"),
    ("no answer", "no_answer", "{}"),
    ("events/s", "events_per_s", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.0f}"),
    ("p99 ms", "p99_ms", "{:.0f}"),
    ("wall s", "wall_s", "{:.1f}"),
    ("faults injected", "injected", "{}"),
)


def format_table(tallies: Sequence[Tally]) -> str:
    """A Markdown table, one row per scenario (paste-able into a README)."""
    rows = [[title for title, _, _ in COLUMNS]]
    for t in tallies:
        rows.append([fmt.format(getattr(t, attr)) for _, attr, fmt in COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append("")
    for t in tallies:
        cpu = f"CPU ms per event: function {t.function_cpu_ms:.1f}, client {t.client_cpu_ms:.1f}"
        if t.airflow_cpu_ms == t.airflow_cpu_ms:  # not nan
            cpu += f", Airflow {t.airflow_cpu_ms:.1f}"
        extra = f"; gave up {t.gave_up}, run+dead letter {t.run_and_dead_letter} {t.notes}" if not t.ok else ""
        lines.append(f"- {t.scenario}: {t.poisoned} poison; {cpu}; load average {t.loadavg}{extra}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.load.runner", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("faults", "restart", "load", "all"))
    parser.add_argument("--events", type=int, default=None, help="distinct events (faults: 400, restart: 300)")
    parser.add_argument("--concurrency", type=int, default=None, help="client threads (faults: 16, load: 32)")
    parser.add_argument("--duplicates", type=float, default=0.1, help="share of events delivered twice")
    parser.add_argument("--poison", type=float, default=None, help="share of events that must be dead-lettered")
    choices = ",".join((CONTROL, *FAKE_SCENARIOS))
    parser.add_argument("--only", default="", help=f"fake-Airflow scenarios, comma-separated: {choices}")
    parser.add_argument("--threads", type=int, default=None, help="THREADS for functions-framework (default 4×CPUs)")
    parser.add_argument("--max-in-flight", type=int, default=1, help="AIRFLOW_MAX_IN_FLIGHT for load (SQLite: 1)")
    parser.add_argument("--baseline", type=int, default=200, help="load: POSTs straight to Airflow first (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temporary dir)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    tallies: list[Tally] = []

    def spec(events: int, concurrency: int, poison: float) -> BurstSpec:
        return BurstSpec(
            events=args.events or events,
            concurrency=args.concurrency or concurrency,
            duplicates=args.duplicates,
            poison=poison if args.poison is None else args.poison,
            seed=args.seed,
        )

    with rig(args.workdir, args.threads, args.verbose) as shared:
        if args.what in ("faults", "all"):
            names = [n for n in args.only.split(",") if n] or [CONTROL, *FAKE_SCENARIOS]
            for name in names:
                tallies.append(run_fake_scenario(shared, name, spec(400, 16, 0.05)))
                shared.log(format_table(tallies[-1:]))
        if args.what in ("restart", "load", "all"):
            with AirflowServer(3, shared.workdir / "airflow3", auth="none") as airflow:
                if args.what in ("restart", "all"):
                    tallies.append(run_restart(shared, airflow, spec(300, 16, 0.05)))
                    shared.log(format_table(tallies[-1:]))
                if args.what in ("load", "all"):
                    load_spec = spec(5000, 32, 0.0)
                    tallies.append(
                        run_load(shared, airflow, load_spec, max_in_flight=args.max_in_flight, baseline=args.baseline)
                    )
    print()
    for t in tallies:
        print(f"{t.scenario}: {DESCRIPTIONS.get(t.scenario, '')}")
    print(format_table(tallies))
    if args.json:
        args.json.write_text(json.dumps([asdict(t) | {"ok": t.ok} for t in tallies], indent=2))
    return 0 if all(t.ok for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "BurstSpec",
    "ClientPolicy",
    "Rig",
    "Tally",
    "burst",
    "format_table",
    "make_events",
    "plan_deliveries",
    "rig",
    "run_fake_scenario",
    "run_load",
    "run_restart",
]
