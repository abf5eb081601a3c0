"""why / sweep, fast tier: the synthetic event is the live one (property test), the pure stages, and a sweep and a
``why`` against the storage emulator and the fake Airflow (the real servers are in tests/integration)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dagtrigger import events, function, send
from dagtrigger.accounting.expect import expect
from dagtrigger.accounting.interval import Interval, interval, parse_duration
from dagtrigger.accounting.listing import match_glob, plan
from dagtrigger.accounting.sweep import SweepOptions, sweep
from dagtrigger.accounting.synthetic import finalized_event
from dagtrigger.accounting.verdict import Facts, Verdict, decide
from dagtrigger.accounting.why import why
from dagtrigger.conf import RESERVED_KEY, documents
from dagtrigger.deadletter import DeadLetterStore
from dagtrigger.deadletter.seal import NO_KEYS, SealKeys
from dagtrigger.pipeline import Pipeline
from dagtrigger.render import render
from dagtrigger.routing import explain, route
from dagtrigger.rules import parse_rules
from devtools.fakes import FakeAirflow
from tests.support.storage_emulator import StorageEmulator, storage_emulator

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------------- the synthetic event is the live one

ROUTES = {
    "routes": [
        {"name": "plain", "dag_id": "plain_dag", "match": {"bucket": "landing"}},
        {
            "name": "templated",
            "dag_id": "tpl_dag",
            "match": {"bucket": "landing", "name": {"glob": "**/*.csv"}},
            "conf": {"file": "basename(name)"},
            "run_id": "up__{file}__{generation}",
        },
        {"name": "marker", "dag_id": "marker_dag", "marker": "_SUCCESS", "match": {"bucket": "landing"}},
        {"name": "shared_a", "dag_id": "shared_dag", "match": {"bucket": "landing"}},
        {"name": "shared_b", "dag_id": "shared_dag", "match": {"bucket": "landing", "metadata": {"team": "b"}}},
        {
            "name": "batched",
            "dag_id": "batch_dag",
            "match": {"bucket": "landing"},
            "batch": {"window": 60, "members": "gs://ops/members"},
        },
    ]
}
RULES = parse_rules(ROUTES, "test")

names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60),
    st.sampled_from(["a/b/_SUCCESS", "x/_SUCCESS", "dir/", "é/ü/日本.csv", "a  b/%20/#?.csv", "x.tmp", "../x.csv"]),
).filter(lambda n: n.strip() != "")


def live_event(resource_args: dict[str, Any]) -> events.Event:
    """The event the function builds from Eventarc's CloudEvent for this upload (binary mode, as `send` posts it)."""
    out = send.storage_event("http://unused", **resource_args)
    return events.from_cloud_event(dict(out.attributes), json.loads(out.body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=names,
    generation=st.integers(min_value=1, max_value=2**63 - 1).map(str),
    metadata=st.one_of(
        st.none(), st.dictionaries(st.sampled_from(["team", "dagtrigger-ignore", "k"]), st.text(max_size=5))
    ),
    minutes=st.integers(min_value=0, max_value=60 * 24 * 3),
)
def test_the_synthetic_event_gives_the_live_run_ids_and_conf_keys(
    name: str, generation: str, metadata: dict[str, str] | None, minutes: int
) -> None:
    args = {"bucket": "landing", "name": name, "generation": generation, "metadata": metadata, "size": 3,
            "now": NOW - timedelta(minutes=minutes)}  # fmt: skip
    live = live_event(args)
    resource = json.loads(send.storage_event("http://unused", **args).body)  # what a listing returns
    synthetic = finalized_event(resource)
    assert route(synthetic, RULES).targets == route(live, RULES).targets
    assert explain(synthetic, RULES) == explain(live, RULES)
    live_docs, synthetic_docs = documents(live), documents(synthetic)
    for target in route(live, RULES).targets:
        a = expect(live, target, live_docs, _no_manifest, NOW)
        b = expect(synthetic, target, synthetic_docs, _no_manifest, NOW)
        assert a == b
        if target.route.batch is None:
            live_conf = render(live, target.route, None, live_docs).conf
            synthetic_conf = render(synthetic, target.route, None, synthetic_docs).conf
            assert live_conf.keys() == synthetic_conf.keys()
            assert {k: v for k, v in live_conf.items() if k != RESERVED_KEY} == {
                k: v for k, v in synthetic_conf.items() if k != RESERVED_KEY
            }
            assert synthetic_conf[RESERVED_KEY].keys() == live_conf[RESERVED_KEY].keys() | {"via"}
            assert synthetic_conf[RESERVED_KEY]["via"] == "sweep"


def _no_manifest(bucket: str, name: str, max_bytes: int) -> Any:
    raise AssertionError("no route here reads a manifest")


def test_a_relayed_storage_notification_gives_the_same_run_id_too() -> None:
    """Uploads delivered as Pub/Sub storage notifications must not be sent again by a sweep either."""
    args = {"bucket": "landing", "name": "a/b.csv", "generation": "1732442400123456", "now": NOW}
    out = send.storage_event("http://unused", **args)
    resource = json.loads(out.body)
    relayed = events.from_push_envelope(
        {
            "message": {
                "messageId": "99",
                "data": base64.b64encode(out.body).decode(),
                "attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "landing", "objectId": "a/b.csv",
                               "objectGeneration": "1732442400123456", "payloadFormat": "JSON_API_V1"},
            },
            "subscription": "projects/p/subscriptions/s",
        },
        frozenset({("landing", "projects/p/subscriptions/s")}),
    )  # fmt: skip
    assert relayed.storage is not None
    synthetic = finalized_event(resource)
    for target in route(relayed, RULES).targets:
        if target.route.batch is None:
            assert expect(relayed, target, documents(relayed), _no_manifest, NOW) == expect(
                synthetic, target, documents(synthetic), _no_manifest, NOW
            )


# ------------------------------------------------------------------------------------------------ the pure stages


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("90m", 5400), ("26h", 93600), ("7d", 604800), ("0", 0), ("1.5h", 5400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "26", "h", "-1h", "1w", "1 h"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="26h"):
        parse_duration(text)


def test_interval_from_durations_timestamps_and_settle() -> None:
    got = interval("26h", None, "5m", NOW)
    assert got == Interval(NOW - timedelta(hours=26), NOW - timedelta(minutes=5))
    got = interval("2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z", "0", NOW)
    assert got.until == datetime(2026, 11, 24, tzinfo=UTC)
    with pytest.raises(ValueError, match="nothing to sweep"):
        interval("1m", None, "5m", NOW)


def test_listings_are_narrowed_by_bucket_prefix_and_glob() -> None:
    rules = parse_rules(
        {
            "routes": [
                {"name": "a", "dag_id": "d", "match": {"bucket": ["b1", "b2"], "name": {"prefix": ["in/", "in/x/"]}}},
                {"name": "g", "dag_id": "d", "match": {"bucket": "b1", "name": {"glob": "land/**/*.csv"}}},
                {"name": "any", "dag_id": "d"},
                {"name": "msgs", "dag_id": "d", "match": {"kind": "pubsub"}},
                {"name": "del", "dag_id": "d", "match": {"bucket": "b3", "event": ["finalized", "deleted"]}},
            ]
        },
        "test",
    )
    listings, unswept = plan(rules, None, ())
    described = sorted(li.describe() for li in listings)
    assert described == [
        "gs://b1/in/*",
        "gs://b1/land/* matchGlob=land/**.csv",
        "gs://b2/in/*",
        "gs://b3/*",
    ]
    assert {u.route for u in unswept} == {"any", "del"}
    listings, unswept = plan(rules, ("any",), ("b9",))
    assert [li.describe() for li in listings] == ["gs://b9/*"] and not unswept


def test_match_glob_lists_a_superset_or_nothing() -> None:
    assert match_glob(("**/*.csv",)) == "**.csv"
    assert match_glob(("a/*.csv", "b/*.json")) == "{a/*.csv,b/*.json}"
    assert match_glob(("[!a]*.csv",)) is None
    assert match_glob(("a{b}",)) is None


@pytest.mark.parametrize(
    ("facts", "verdict"),
    [
        (Facts(run_exists=True, dead_letter=True), Verdict.TRIGGERED),
        (Facts(run_exists=False, dead_letter=True), Verdict.DEAD_LETTERED),
        (Facts(run_exists=False, dead_letter=False), Verdict.MISSING),
        (Facts(True, False, batched=True, member_recorded=True, window_open=True), Verdict.PENDING),
        (Facts(True, False, batched=True, member_recorded=True), Verdict.TRIGGERED),
        (Facts(False, False, batched=True, member_recorded=True), Verdict.MISSING),
        (Facts(False, True, batched=True), Verdict.DEAD_LETTERED),
        (Facts(True, False, batched=True), Verdict.MISSING),
    ],
)
def test_verdicts(facts: Facts, verdict: Verdict) -> None:
    assert decide(facts) is verdict


# ------------------------------------------------------------------------ against the storage emulator and fake Airflow


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        yield emulator


_n = itertools.count()


@dataclass
class World:
    gcs: StorageEmulator
    airflow: FakeAirflow
    bucket: str
    pipeline: Pipeline
    store: DeadLetterStore
    created: datetime

    def upload(self, name: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        blob = self.gcs.client().bucket(self.bucket).blob(name)
        if metadata:
            blob.metadata = metadata
        blob.upload_from_string(b"x,y\n")
        return dict(self.gcs.client().bucket(self.bucket).get_blob(name)._properties)

    def deliver(self, resource: dict[str, Any]) -> None:
        """What the live path did: the function's pipeline with the event Eventarc delivered."""
        out = send.storage_event("http://unused", self.bucket, resource["name"], str(resource["generation"]),
                                 now=self.created)  # fmt: skip
        self.pipeline.process(events.from_cloud_event(dict(out.attributes), {**json.loads(out.body), **resource}))


@pytest.fixture
def world(gcs: StorageEmulator, airflow: FakeAirflow) -> World:
    n = next(_n)
    bucket, dead = f"landing-{n}", f"ops-{n}"
    gcs.create_bucket(bucket)
    gcs.create_bucket(dead)
    env = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "ingest",
        "AIRFLOW_AUTH": "none",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "1",
        "MAX_EVENT_AGE_SECONDS": str(10 * 86400),
    }
    pipeline = function.build(env).pipeline
    store = DeadLetterStore(f"gs://{dead}/dl", client=gcs.client(), budget_s=5)
    pipeline.dead_letters = store
    pipeline.settings = replace(pipeline.settings, dead_letter_uri=f"gs://{dead}/dl")
    return World(gcs, airflow, bucket, pipeline, store, datetime.now(UTC))


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow() as fake:
        yield fake


def _options(world: World, **over: Any) -> SweepOptions:
    span = Interval(world.created - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
    return SweepOptions(**{"interval": span, "buckets": (world.bucket,), **over})


def test_sweep_finds_exactly_the_missing_sends_them_once_and_then_nothing(world: World) -> None:
    delivered = [world.upload(f"in/d{i:02}.csv") for i in range(12)]
    world.upload("in/folder/")  # ignored: a folder placeholder
    world.upload("in/x.tmp")  # ignored: a temporary upload name
    missing = [world.upload(f"in/m{i:02}.csv", {"k": "é"}) for i in range(5)]
    for resource in delivered:
        world.deliver(resource)
    failed = world.upload("in/failed.csv")
    world.airflow.missing_dags.add("ingest")
    world.deliver(failed)  # Airflow said 404: a dead letter
    world.airflow.missing_dags.clear()
    assert len(world.airflow.runs) == 12
    client = world.gcs.client()

    dry = sweep(world.pipeline, _options(world, dry_run=True), client, datetime.now(UTC))
    counts = dry.counts
    assert (counts["objects_listed"], counts["matched"], counts["ignored"]) == (20, 18, 2)
    assert (counts["present"], counts["dead_lettered"], counts["missing"], counts["triggered"]) == (12, 1, 5, 0)
    assert len(world.airflow.runs) == 12
    assert sorted(p["object"].split("#")[0] for p in dry.missing_pairs) == sorted(
        f"gs://{world.bucket}/{r['name']}" for r in missing
    )

    real = sweep(world.pipeline, _options(world), client, datetime.now(UTC))
    assert (real.counts["missing"], real.counts["triggered"], real.counts["failed"]) == (5, 5, 0)
    assert len(world.airflow.runs) == 17
    sent = [run for (_, run_id), run in world.airflow.runs.items() if run["conf"]["_event"].get("via") == "sweep"]
    assert sorted(run["conf"]["name"] for run in sent) == sorted(r["name"] for r in missing)
    assert all(run["conf"]["metadata"] == {"k": "é"} for run in sent)
    # version probe + one page of runs + 5 POSTs: never one call per object
    assert real.airflow_calls <= 18 / 100 + 5 + 3
    assert len(list(world.store.keys(world.created - timedelta(days=1)))) == 1

    again = sweep(world.pipeline, _options(world), client, datetime.now(UTC))
    assert (again.counts["missing"], again.counts["triggered"], again.counts["present"]) == (0, 0, 17)


def test_a_sweep_that_races_another_counts_a_409_as_present(world: World) -> None:
    resource = world.upload("in/late.csv")
    client = world.gcs.client()
    dry = sweep(world.pipeline, _options(world, dry_run=True), client, datetime.now(UTC))
    assert dry.counts["missing"] == 1
    world.deliver(resource)  # the live redelivery lands between the listing and the POST
    runs_before = dict(world.airflow.runs)
    # the sweep's ledger is read before the redelivery: replay that order by hiding the run from the list page
    world.airflow.runs.clear()
    opts = _options(world)
    from dagtrigger.accounting import sweep as sweep_module

    original = sweep_module.Ledger.load_runs

    def load_then_restore(self: Any, dag_ids: Any, since: datetime) -> None:
        original(self, dag_ids, since)
        world.airflow.runs.update(runs_before)

    sweep_module.Ledger.load_runs = load_then_restore  # type: ignore[method-assign]
    try:
        raced = sweep(world.pipeline, opts, client, datetime.now(UTC))
    finally:
        sweep_module.Ledger.load_runs = original  # type: ignore[method-assign]
    assert (raced.counts["missing"], raced.counts["raced"], raced.counts["present"], raced.counts["failed"]) == (
        1,
        1,
        1,
        0,
    )
    assert len(world.airflow.runs) == 1


class StepClock:
    """Each reading is one second later: a budget of k seconds stops the sweep after about k objects."""

    def __init__(self) -> None:
        self.t = 0.0

    def monotonic(self) -> float:
        self.t += 1.0
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def test_a_time_budget_leaves_a_cursor_and_the_next_sweep_continues(world: World) -> None:
    for i in range(10):
        world.upload(f"in/f{i:02}.csv")
    client = world.gcs.client()
    first = sweep(world.pipeline, _options(world, budget_s=4), client, datetime.now(UTC), clock=StepClock())
    assert (
        not first.complete
        and first.cursor is not None
        and first.cursor.startswith(f"gs://{world.pipeline.settings.dead_letter_uri[5:]}/_sweep/")
    )
    done = first.counts["triggered"]
    assert 0 < done < 10
    second = sweep(world.pipeline, _options(world), client, datetime.now(UTC))
    assert second.resumed and second.complete and second.cursor is None
    assert second.counts["triggered"] == 10 - done
    assert second.counts["objects_listed"] == 10 - done
    assert len(world.airflow.runs) == 10


def test_why_gives_a_verdict_per_route(world: World) -> None:
    ok, lost, dead = world.upload("in/ok.csv"), world.upload("in/lost.csv"), world.upload("in/dead.csv")
    world.deliver(ok)
    world.airflow.missing_dags.add("ingest")
    world.deliver(dead)
    world.airflow.missing_dags.clear()
    world.upload("in/tmp.tmp")
    client = world.gcs.client()

    def verdict(name: str, **kw: Any) -> dict[str, Any]:
        answer = why(world.pipeline, client, f"gs://{world.bucket}/{name}", None, datetime.now(UTC))
        (only,) = answer["routes"]
        return only

    assert verdict("in/ok.csv")["verdict"] == "triggered"
    assert verdict("in/ok.csv")["run_state"] == "queued"
    answer = verdict("in/dead.csv")
    assert answer["verdict"] == "dead_lettered" and "404" in answer["dead_letter"]["reason"]
    assert verdict("in/lost.csv")["verdict"] == "missing"
    tmp = verdict("in/tmp.tmp")
    assert tmp["verdict"] == "ignored" and "temporary" in tmp["reason"] and not tmp["matched"]
    assert lost["generation"]


# ----------------------------------------------------------------------- planted dead letters (issue 16 × accounting)

SEAL_KEY = base64.b64encode(b"sweep-seal-key-0123456789abcdef").decode()


def _sealed(world: World) -> None:
    """The world's function with a seal key, as deployed with DEAD_LETTER_SEAL_SECRET."""
    keys = SealKeys.parse(SEAL_KEY)
    world.store.seal = keys
    world.pipeline.settings = replace(world.pipeline.settings, dead_letter_seal_secrets=(SEAL_KEY,))


def _planted(world: World, resource: dict[str, Any]) -> None:
    """Whoever can write the dead-letter bucket (but holds no seal key) records a failure that never happened."""
    sealed = world.store.seal
    world.store.seal = NO_KEYS
    world.airflow.missing_dags.add("ingest")
    try:
        world.deliver(resource)  # an unsealed record at exactly the name the live path would use
    finally:
        world.airflow.missing_dags.clear()
        world.store.seal = sealed
    world.airflow.runs.clear()


def test_a_planted_dead_letter_does_not_hide_an_upload_from_sweep_or_why(world: World) -> None:
    _sealed(world)
    genuine, planted = world.upload("in/genuine.csv"), world.upload("in/planted.csv")
    world.airflow.missing_dags.add("ingest")
    world.deliver(genuine)  # a real failure: a sealed record
    world.airflow.missing_dags.clear()
    _planted(world, planted)
    client = world.gcs.client()

    dry = sweep(world.pipeline, _options(world, dry_run=True), client, datetime.now(UTC))
    assert (dry.counts["dead_lettered"], dry.counts["missing"]) == (1, 1)
    (refused,) = dry.refused_records
    assert refused["reason"] == "the record has no seal", refused
    answer = why(world.pipeline, client, f"gs://{world.bucket}/in/planted.csv", None, datetime.now(UTC))
    (only,) = answer["routes"]
    assert only["verdict"] == "missing" and "no seal" in only["dead_letter"]["not_counted"]
    answer = why(world.pipeline, client, f"gs://{world.bucket}/in/genuine.csv", None, datetime.now(UTC))
    assert answer["routes"][0]["verdict"] == "dead_lettered"

    real = sweep(world.pipeline, _options(world), client, datetime.now(UTC))
    assert (real.counts["triggered"], real.counts["dead_lettered"]) == (1, 1)
    assert [run["conf"]["name"] for run in world.airflow.runs.values()] == ["in/planted.csv"]


def test_a_sealed_record_under_another_runs_name_does_not_count(world: World) -> None:
    _sealed(world)
    world.airflow.missing_dags.add("ingest")
    world.deliver(world.upload("in/a.csv"))
    world.airflow.missing_dags.clear()
    ((name, _),) = list(world.store.keys(world.created - timedelta(days=1)))
    record = world.store.read(name)
    problem = world.store.accounts_for(name, record.dag_id, record.run_id + "x")
    assert problem is not None and "another run" in problem
    assert world.store.accounts_for(name, record.dag_id, record.run_id) is None
    world.store.seal = NO_KEYS
    assert world.store.accounts_for(name, record.dag_id, record.run_id + "x") is None  # no key: names are taken


def _batched_pipeline(world: World, tmp_path: Path, seal: bool) -> Pipeline:
    routes = tmp_path / f"routes-{seal}.json"
    members = f"gs://{world.store.bucket_name}/members"
    batched = {"name": "batched", "dag_id": "batch_dag", "match": {"bucket": world.bucket}}
    routes.write_text(json.dumps({"routes": [{**batched, "batch": {"window": 3600, "members": members}}]}))
    env = {
        "AIRFLOW_URI": world.airflow.url,
        "AIRFLOW_AUTH": "none",
        "ROUTES_FILE": str(routes),
        "MAX_EVENT_AGE_SECONDS": str(10 * 86400),
        **({"DEAD_LETTER_SEAL_SECRET": SEAL_KEY} if seal else {}),
    }
    pipeline = function.build(env).pipeline
    assert pipeline.batcher is not None
    pipeline.batcher.store._client = world.gcs.client()  # the emulator, in process (the store seals as built)
    return pipeline


def test_a_planted_batch_member_does_not_hide_an_upload_from_sweep_or_why(world: World, tmp_path: Path) -> None:
    """A writer of the members bucket (no seal key) records a member for an upload that was never delivered."""
    sealed, unsealed = _batched_pipeline(world, tmp_path, True), _batched_pipeline(world, tmp_path, False)
    genuine, planted = world.upload("in/genuine.csv"), world.upload("in/planted.csv")
    for pipeline, resource in ((sealed, genuine), (unsealed, planted)):
        world.pipeline = pipeline
        world.deliver(resource)
    bucket = world.store.bucket_name
    docs = {b.name: json.loads(b.download_as_bytes()) for b in world.gcs.client().list_blobs(bucket, prefix="members/")}
    assert len(docs) == 2 and sorted("seal" in doc for doc in docs.values()) == [False, True]

    client = world.gcs.client()
    dry = sweep(sealed, _options(world, dry_run=True), client, datetime.now(UTC))
    assert (dry.counts["pending"], dry.counts["missing"]) == (1, 1), dry.counts
    (refused,) = dry.refused_records
    assert refused["object"].endswith("planted.csv" + refused["object"].rsplit("planted.csv", 1)[-1])
    assert refused["reason"] == "the member has no seal"
    answer = why(sealed, client, f"gs://{world.bucket}/in/planted.csv", None, datetime.now(UTC))
    (only,) = answer["routes"]
    assert only["verdict"] == "missing" and only["batch"]["not_counted"] == "the member has no seal"
    answer = why(sealed, client, f"gs://{world.bucket}/in/genuine.csv", None, datetime.now(UTC))
    assert answer["routes"][0]["verdict"] == "pending"
    # without the key, the sweep (like the DAG) cannot tell them apart
    assert sweep(unsealed, _options(world, dry_run=True), client, datetime.now(UTC)).counts["pending"] == 2
