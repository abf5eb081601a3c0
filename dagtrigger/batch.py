"""Batch windows: many events become one DAG run per (route, group, window), started only once the window closed.

Pure values and functions — windows, group values, run ids, the Airflow 2 logical dates, member records and the run's
conf — plus an in-process single flight. There is no state store of ours: Airflow's unique run ids and the member
objects in Cloud Storage are the ledger, so every function here is deterministic in the event (never in the delivery).
"""

from __future__ import annotations

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from .clock import SYSTEM_CLOCK, Clock, parse_utc, utc
from .exceptions import ConfigError, DagtriggerError
from .gcs import location_uri, parse_location
from .run_id import digest, logical_dates, squash
from .templates import Expression

WINDOW_MAX_S = 86_400
# The group when a route names none, per event kind (JMESPath over the template document).
DEFAULT_GROUPS: Mapping[str, str] = {
    "storage": "folder",
    "pubsub": "message.topic || message.subscription",
    "webhook": "path",
}
# An event time further ahead than this is a broken clock: its window's run would wait for a time that never comes.
FUTURE_SKEW_S = 300
# How close to its end a window must be before a member checks whether the run already left ``queued``: the scheduler
# runs on another machine, whose clock may be slightly ahead of ours.
CLOCK_MARGIN_S = 2.0
GROUP_MAX_CHARS = 1024
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BatchError(DagtriggerError, ValueError):
    """This event cannot be placed in a window (unusable time, no group value): a permanent failure for it."""

    key = "batch-unplaceable"


# ---------------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class BatchSpec:
    """A route's ``batch:`` field, validated."""

    window_s: int
    group: Expression | None  # None: DEFAULT_GROUPS by event kind
    bucket: str
    prefix: str  # no slash at either end; "" for the bucket root

    @property
    def members_uri(self) -> str:
        return location_uri(self.bucket, self.prefix)


def parse_batch(value: Any, path: str, error: Callable[[str, str], ConfigError], where: str) -> BatchSpec:
    """Validate ``batch: {window, group, members}``; ``error(field path, problem)`` names the route and field."""
    if not isinstance(value, Mapping):
        raise error(path, "must be a mapping with window, group and members")
    unknown = sorted(set(value) - {"window", "group", "members"})
    if unknown:
        raise error(path, f"unknown field(s) {', '.join(map(str, unknown))}; allowed: window, group, members")
    window = value.get("window")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= WINDOW_MAX_S:
        raise error(f"{path}.window", f"must be a whole number of seconds from 1 to {WINDOW_MAX_S} (e.g. 60)")
    group = value.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise error(f"{path}.group", "must be a JMESPath expression such as folder (the default for storage)")
    members = value.get("members")
    if not isinstance(members, str) or not members.startswith("gs://"):
        raise error(f"{path}.members", "is required: the gs://bucket/prefix where members are recorded")
    try:
        bucket, prefix = parse_location(members)
    except ValueError as exc:
        raise error(f"{path}.members", f"{exc} (e.g. gs://ops-bucket/batches)") from None
    return BatchSpec(
        window_s=window,
        group=Expression(group, f"{where} → {path}.group") if group is not None else None,
        bucket=bucket,
        prefix=prefix,
    )


# ------------------------------------------------------------------------------------------------------------- time


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


# ------------------------------------------------------------------------------------------------------------ group


@functools.lru_cache(maxsize=8)
def _default_group(kind: str) -> Expression | None:
    source = DEFAULT_GROUPS.get(kind)
    return Expression(source, f"the default batch group for {kind} events") if source else None


def group_value(spec: BatchSpec, kind: str, context: Mapping[str, Any]) -> str:
    """The group as text: strings as they are, numbers and booleans as JSON, objects and lists as canonical JSON.

    Raises BatchError (null, too long) or TemplateError (the expression failed on this event).
    """
    expression = spec.group or _default_group(kind)
    if expression is None:
        raise BatchError(f"no default batch group for {kind} events: set batch.group")
    value = expression.evaluate(context)
    if value is None:
        raise BatchError(f"batch.group {expression.source!r} is null for this event")
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > GROUP_MAX_CHARS:
        raise BatchError(f"batch.group {expression.source!r} is over {GROUP_MAX_CHARS} characters for this event")
    return text


# ------------------------------------------------------------------------------------------------------------- ids


def batch_run_id(route: str, group: str, window: Window) -> str:
    """``batch__<route>__<group>__<window start>__<digest>``: the same for every member of a (route, group, window),
    different for any other (the digest covers all three and the window size); ≤ 207 characters, always inside
    Airflow's run-id alphabet."""
    hashed = digest("batch", route, group, iso(window.start), window.size_s)
    return "__".join(("batch", squash(route, 64, True, "root"), squash(group, 100, True, "root"), window.label, hashed))


def v1_logical_dates(route: str, group: str, window: Window) -> Iterator[datetime]:
    """Airflow 2 logical dates for this run, in the order to try: window end plus an offset below one second, keyed
    by (route, group), so two groups (or routes) of one window do not share one; the offsets do not depend on the
    window, so they stay stable (run_id.logical_dates; trigger.py tries the next one while a 409 is not ours)."""
    return logical_dates(window.end, route, group)


def members_prefix(spec: BatchSpec, dag_id: str, run_id: str) -> str:
    """The object prefix of one run's members (ends with '/'): unique per (DAG, run id)."""
    head = f"{spec.prefix}/" if spec.prefix else ""
    return f"{head}{dag_id}/{run_id}/"


def member_name(prefix: str, key: str) -> str:
    """One member per event identity: a redelivery rewrites this object, never writes a second one."""
    return f"{prefix}{key}.json"


# -------------------------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Placement:
    """Where one member goes: its run, window, group and object."""

    route: str
    dag_id: str
    group: str
    window: Window
    run_id: str
    bucket: str
    prefix: str

    @property
    def members_uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    def batch_document(self) -> dict[str, Any]:
        """The ``batch`` object in the run's conf (and in the template document of its conf templates)."""
        return {
            "route": self.route,
            "group": self.group,
            "window_start": iso(self.window.start),
            "window_end": iso(self.window.end),
            "members": self.members_uri,
        }


def place(spec: BatchSpec, route: str, dag_id: str, group: str, window: Window) -> Placement:
    run_id = batch_run_id(route, group, window)
    return Placement(route, dag_id, group, window, run_id, spec.bucket, members_prefix(spec, dag_id, run_id))


def member_record(
    placement: Placement, key: str, conf: Mapping[str, Any], event_time: str | None, late: bool
) -> dict[str, Any]:
    """The JSON a DAG reads per member: its key (the event's run-id identity, stable under redelivery), the event's
    default conf, and ``late`` (recorded again here because the run of its own window had already started)."""
    return {
        "key": key,
        "late": late,
        "event_time": event_time,
        "batch_run_id": placement.run_id,
        "window_start": iso(placement.window.start),
        "window_end": iso(placement.window.end),
        "conf": dict(conf),
    }


# ---------------------------------------------------------------------------------------------------- single flight

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
