"""Batch windows, pure parts: window arithmetic, group values, run ids, Airflow 2 logical dates, the `batch:` field,
and the in-process single flight."""

from __future__ import annotations

import random
import re
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger import events
from dagtrigger.batch.placement import batch_run_id, group_value, member_name, members_prefix, place, v1_logical_dates
from dagtrigger.batch.single_flight import FreshRead, SingleFlight
from dagtrigger.batch.windows import EPOCH, FUTURE_SKEW_S, Window, event_moment, window_for
from dagtrigger.conf import template_context
from dagtrigger.exceptions import BatchError, ConfigError
from dagtrigger.rules import parse_rules
from dagtrigger.run_id import OFFSET_SLOTS, run_id_for
from tests.support.clock import FakeClock

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

CEST = timezone(timedelta(hours=2))
AIRFLOW_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC) | st.none()
)
sizes = st.integers(min_value=1, max_value=86_400)
texts = st.text(min_size=0, max_size=300)


def rules_with(batch: Any, **route: Any) -> Any:
    doc = {"routes": [{"name": "exports", "dag_id": "load", "match": {"kind": "storage"}, "batch": batch, **route}]}
    return parse_rules(doc, "ROUTES_FILE r.yaml")


# ------------------------------------------------------------------------------------------------------------ windows


@given(moments, sizes)
def test_window_contains_the_moment_and_is_aligned_to_the_epoch(moment: datetime, size: int) -> None:
    try:
        window = window_for(moment, size)
    except BatchError:
        return  # only at the edges of year 1 / 9999
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    assert window.start <= aware < window.end
    assert window.end - window.start == timedelta(seconds=size)
    assert ((window.start - EPOCH) // timedelta(seconds=1)) % size == 0
    assert window.start.tzinfo is UTC


@given(moments, sizes)
def test_consecutive_windows_tile_time(moment: datetime, size: int) -> None:
    try:
        window = window_for(moment, size)
        following = window_for(window.end, size)
    except (BatchError, OverflowError):
        return
    assert following == window.next()
    assert window_for(window.end - timedelta(microseconds=1), size) == window


@pytest.mark.parametrize(
    ("moment", "size", "start"),
    [
        (datetime(2026, 11, 30, 10, 0, 59, 999999, tzinfo=UTC), 60, datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 30, 10, 1, tzinfo=UTC), 60, datetime(2026, 11, 30, 10, 1, tzinfo=UTC)),
        (datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), 60, datetime(1969, 12, 31, 23, 59, tzinfo=UTC)),
        (
            datetime(2026, 3, 29, 1, 30, tzinfo=CEST),
            3600,
            datetime(2026, 3, 28, 23, tzinfo=UTC),
        ),
        (datetime(2026, 11, 30, 10, 0, 7), 86_400, datetime(2026, 11, 30, tzinfo=UTC)),  # naive = UTC
    ],
)
def test_window_boundaries(moment: datetime, size: int, start: datetime) -> None:
    assert window_for(moment, size).start == start


def test_no_window_past_year_9999() -> None:
    with pytest.raises(BatchError):
        window_for(datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC), 60)


def test_event_time_far_past_is_kept_future_beyond_the_skew_is_refused() -> None:
    now = datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert event_moment("1999-01-01T00:00:00Z", now) == datetime(1999, 1, 1, tzinfo=UTC)
    assert event_moment(None, now) == now  # webhooks: the arrival time
    assert event_moment("not a time", now) == now
    near = now + timedelta(seconds=FUTURE_SKEW_S)
    assert event_moment(near.isoformat(), now) == near
    with pytest.raises(BatchError, match="ahead"):
        event_moment((near + timedelta(seconds=1)).isoformat(), now)


# ------------------------------------------------------------------------------------------------------------ run ids


@given(st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True), texts, moments, sizes)
def test_run_ids_are_valid_and_stable(route: str, group: str, moment: datetime, size: int) -> None:
    try:
        window = window_for(moment, size)
    except BatchError:
        return
    run_id = batch_run_id(route, group, window)
    assert AIRFLOW_RUN_ID.match(run_id) and len(run_id) <= 250
    assert batch_run_id(route, group, window_for(moment, size)) == run_id


@given(texts, texts, moments)
def test_run_ids_differ_per_group_and_window(group: str, other: str, moment: datetime) -> None:
    try:
        window = window_for(moment, 60)
        later = window.next()
    except (BatchError, OverflowError):
        return
    assert batch_run_id("r", group, window) != batch_run_id("r", group, later)
    assert batch_run_id("r", group, window) != batch_run_id("r", group, window_for(moment, 120))  # size differs
    if group != other:
        assert batch_run_id("r", group, window) != batch_run_id("r", other, window)
    assert batch_run_id("r", group, window) != batch_run_id("r2", group, window)


def test_redeliveries_land_in_the_same_run_and_member_object() -> None:
    """Same object version, new event id and a later delivery: same window (the event time), run and member name."""
    spec = rules_with({"window": 60, "members": "gs://ops/b"}).routes[0].batch
    first = events.from_cloud_event(storage_attrs(name="exports/a/1.csv", time="2026-11-30T10:00:05Z"),
                                    storage_data(name="exports/a/1.csv"))  # fmt: skip
    again = events.from_cloud_event(
        storage_attrs(name="exports/a/1.csv", id="another-delivery", time="2026-11-30T10:00:05Z"),
        storage_data(name="exports/a/1.csv"),
    )
    placements = []
    for event in (first, again):
        group = group_value(spec, event.kind.value, template_context(event))
        window = window_for(event_moment(event.time, datetime(2026, 11, 30, 10, 3, tzinfo=UTC)), spec.window_s)
        placement = place(spec, "exports", "load", group, window)
        placements.append((placement.run_id, member_name(placement.prefix, run_id_for(event))))
    assert placements[0] == placements[1]
    assert placements[0][1].startswith("b/load/batch__exports__exports_a__20261130T100000Z__")


def test_members_prefix_is_unique_per_dag_and_run() -> None:
    spec = rules_with({"window": 60, "members": "gs://ops/x/y/"}).routes[0].batch
    assert spec is not None and spec.prefix == "x/y"
    assert members_prefix(spec, "load", "r1") == "x/y/load/r1/"
    assert members_prefix(spec, "load", "r1") != members_prefix(spec, "other", "r1")


# ------------------------------------------------------------------------------------------------- Airflow 2 offsets


def test_offsets_stay_below_one_second_and_do_not_depend_on_the_window() -> None:
    window = Window(datetime(2026, 11, 30, 10, tzinfo=UTC), 60)
    dates = list(v1_logical_dates("r", "g", window))
    assert all(window.end <= d < window.end + timedelta(seconds=1) for d in dates)
    assert len(set(dates)) == len(dates)
    later = [d - timedelta(seconds=60) for d in v1_logical_dates("r", "g", window.next())]
    assert later == dates


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32), st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True), st.text(max_size=20))
def test_ten_thousand_groups_get_distinct_logical_dates(seed: int, route: str, stem: str) -> None:
    """What Airflow 2 does: the first free candidate wins (a taken date answers 409 and the next one is tried)."""
    rng = random.Random(seed)
    groups = {f"{stem}{rng.getrandbits(64):x}/{n}" for n in range(10_000)}
    window = Window(datetime(2026, 11, 30, 10, tzinfo=UTC), 60)
    taken: set[datetime] = set()
    first_choice_collisions = 0
    for group in groups:
        candidates = list(v1_logical_dates(route, group, window))
        free = next(d for d in candidates if d not in taken)  # StopIteration = a group swallowed: fails the test
        first_choice_collisions += free != candidates[0]
        taken.add(free)
    assert len(taken) == len(groups)
    assert first_choice_collisions < 200  # birthday bound: ~50 expected for 10^4 groups in 10^6 slots
    assert all(window.end <= d < window.end + timedelta(microseconds=OFFSET_SLOTS) for d in taken)


def test_folders_0000_to_9999_get_distinct_dates() -> None:
    window = Window(datetime(2026, 11, 30, 10, tzinfo=UTC), 60)
    taken: set[datetime] = set()
    for n in range(10_000):
        taken.add(next(d for d in v1_logical_dates("exports", f"exports/f{n:04d}", window) if d not in taken))
    assert len(taken) == 10_000


# ------------------------------------------------------------------------------------------------------------- groups


def test_default_groups_per_kind_and_custom_expressions() -> None:
    spec = rules_with({"window": 60, "members": "gs://ops"}).routes[0].batch
    assert spec is not None
    storage = events.from_cloud_event(storage_attrs(name="exports/2026/a.csv"), storage_data(name="exports/2026/a.csv"))
    assert group_value(spec, "storage", template_context(storage)) == "exports/2026"
    root = events.from_cloud_event(storage_attrs(name="a.csv"), storage_data(name="a.csv"))
    assert group_value(spec, "storage", template_context(root)) == ""
    message = events.from_cloud_event(pubsub_attrs(), pubsub_data(b'{"table": "orders"}'))
    assert group_value(spec, "pubsub", template_context(message)) == message.message.topic  # type: ignore[union-attr]
    custom = rules_with({"window": 60, "group": "body.table", "members": "gs://ops"}).routes[0].batch
    assert custom is not None
    assert group_value(custom, "pubsub", template_context(message)) == "orders"
    numeric = rules_with({"window": 60, "group": "`[3, 1]`", "members": "gs://ops"}).routes[0].batch
    assert numeric is not None and group_value(numeric, "storage", {}) == "[3,1]"
    with pytest.raises(BatchError, match="null"):
        group_value(custom, "storage", template_context(storage))


@pytest.mark.parametrize(
    ("batch", "route", "fragment"),
    [
        ({"window": 0, "members": "gs://ops"}, {}, "route 'exports' → route 'exports'.batch.window"),
        ({"window": 86_401, "members": "gs://ops"}, {}, "batch.window: must be a whole number"),
        ({"window": True, "members": "gs://ops"}, {}, "batch.window"),
        ({"window": "60", "members": "gs://ops"}, {}, "batch.window"),
        ({"window": 60}, {}, "batch.members: is required"),
        ({"window": 60, "members": "s3://x"}, {}, "batch.members"),
        ({"window": 60, "members": "gs://Bad_Bucket!"}, {}, "batch.members: 'Bad_Bucket!'"),
        ({"window": 60, "members": "gs://ops/a//b"}, {}, "batch.members: the prefix"),
        ({"window": 60, "members": "gs://ops", "group": ""}, {}, "batch.group"),
        ({"window": 60, "members": "gs://ops", "group": "folder[["}, {}, "batch.group: 'folder[['"),
        ({"window": 60, "members": "gs://ops", "size": 3}, {}, "unknown field(s) size"),
        ("60", {}, "batch: must be a mapping"),
        ({"window": 60, "members": "gs://ops"}, {"run_id": "{default}"}, "run_id: cannot be set with batch"),
    ],
)
def test_batch_field_errors_name_the_route_and_field(batch: Any, route: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rules_with(batch, **route)
    message = str(caught.value)
    assert "route 'exports'" in message and fragment.replace("route 'exports' → ", "") in message


def test_batch_field_is_optional_and_kept() -> None:
    spec = rules_with({"window": 60, "group": "folder", "members": "gs://ops-bucket/dagtrigger-batches"}).routes[0]
    assert (
        spec.batch is not None
        and spec.batch.window_s == 60
        and spec.batch.members_uri == ("gs://ops-bucket/dagtrigger-batches")
    )
    plain = parse_rules({"routes": [{"name": "p", "dag_id": "d"}]}, "x")
    assert plain.routes[0].batch is None


# ------------------------------------------------------------------------------------------------------ single flight


def test_single_flight_one_call_per_key_for_concurrent_callers() -> None:
    calls: list[str] = []
    gate = threading.Event()

    def call() -> str:
        calls.append("x")
        gate.wait(5)
        return "created"

    flight: SingleFlight[str, str] = SingleFlight(lambda r: r == "created")
    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(flight.run("k", call))) for _ in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert sorted(results) == [("created", False)] * 19 + [("created", True)]
    assert flight.run("k", call) == ("created", False) and len(calls) == 1  # remembered


def test_single_flight_does_not_remember_failures_and_survives_a_raising_leader() -> None:
    outcomes = iter(["retry", "created"])
    flight: SingleFlight[str, str] = SingleFlight(lambda r: r == "created")
    assert flight.run("k", lambda: next(outcomes)) == ("retry", True)
    assert flight.run("k", lambda: next(outcomes)) == ("created", True)

    def boom() -> str:
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        flight.run("other", boom)
    assert flight.run("other", lambda: "created") == ("created", True)


def test_single_flight_forgets_the_oldest_keys() -> None:
    flight: SingleFlight[int, str] = SingleFlight(lambda r: True, capacity=3)
    for key in range(5):
        flight.run(key, lambda: "created")
    assert flight.known(0) is None and flight.known(4) == "created"


def test_fresh_read_is_shared_only_by_callers_whose_moment_precedes_it() -> None:
    clock = FakeClock(start=100.0)
    reads: list[int] = []
    gate = threading.Event()

    def fetch() -> str:
        reads.append(1)
        gate.wait(5)
        return f"state-{len(reads)}"

    fresh: FreshRead[str, str] = FreshRead(clock=clock)
    results: list[tuple[str, bool]] = []
    threads = [threading.Thread(target=lambda: results.append(fresh.read("run", 99.0, fetch))) for _ in range(10)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(reads) == 1 and sorted(results) == [("state-1", False)] * 9 + [("state-1", True)]
    assert fresh.read("run", 100.0, fetch) == ("state-1", False)  # that read was sent at 100: fresh enough
    clock.advance(1.0)
    assert fresh.read("run", 100.5, fetch) == ("state-2", True)  # written after that read was sent: read again
