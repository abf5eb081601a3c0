"""drain, fast tier: a dead-lettered message becomes the live event again (property test over odd and unicode names,
generations, binary data), the REST subscriber, and drains against the fake Airflow, a FAKE Pub/Sub REST server and
the storage emulator (real Airflow is in tests/integration/test_drain_real_airflow.py)."""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import google.oauth2.credentials
import pytest
import requests
from google.auth.transport.requests import AuthorizedSession
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from dagtrigger import cli, events, function, send
from dagtrigger.accounting.drain import DrainOptions, drain
from dagtrigger.accounting.pubsub_rest import Subscriber
from dagtrigger.accounting.unwrap import NotCarried, Pulled, unwrap
from dagtrigger.airflow import retry_policy
from dagtrigger.clock import parse_utc
from dagtrigger.conf import RESERVED_KEY, build_conf
from dagtrigger.deadletter import DeadLetterStore
from dagtrigger.exceptions import PubSubUnreachable
from dagtrigger.pipeline import Pipeline
from dagtrigger.run_id import run_id_for
from devtools.fake_pubsub import FakePubSub
from devtools.fakes import Answer, FakeAirflow
from tests.support.clock import FakeClock
from tests.support.storage_emulator import StorageEmulator, storage_emulator

SOURCE = "projects/acct-proj/subscriptions/eventarc-us-central1-trigger-sub-001"
DRAIN = "projects/acct-proj/subscriptions/dagtrigger-dead-hold"
TOPIC = "projects/acct-proj/topics/erp-events"
UPLOADED = parse_utc("2026-12-05T08:00:00Z")


def dead_lettered(attributes: dict[str, str], data: bytes, message_id: str = "9000000000000001") -> Pulled:
    """A message as a pull returns it from the dead-letter topic's subscription (new id, the forwarding attributes)."""
    forwarded = {
        **attributes,
        "CloudPubSubDeadLetterSourceDeliveryCount": "100",
        "CloudPubSubDeadLetterSourceSubscription": SOURCE.rpartition("/")[2],
        "CloudPubSubDeadLetterSourceSubscriptionProject": "acct-proj",
        "CloudPubSubDeadLetterSourceTopicPublishTime": "2026-12-05T08:00:00.123Z",
    }
    return Pulled("ack-1", message_id, data, forwarded, "2026-12-06T00:00:00Z")


def binary(out: send.Outgoing) -> tuple[dict[str, str], bytes]:
    """The live CloudEvent in the Pub/Sub binding's binary mode (ce-* attributes, the data as the payload)."""
    attrs = {("content-type" if k == "datacontenttype" else f"ce-{k}"): v for k, v in out.attributes.items()}
    return {**attrs, "content-type": out.headers["Content-Type"]}, out.body


def notification(resource: dict[str, Any]) -> tuple[dict[str, str], bytes]:
    """The same upload as a Cloud Storage Pub/Sub notification (JSON_API_V1)."""
    attrs = {
        "notificationConfig": "projects/_/buckets/landing/notificationConfigs/7",
        "eventType": "OBJECT_FINALIZE",
        "payloadFormat": "JSON_API_V1",
        "bucketId": resource["bucket"],
        "objectId": resource["name"],
        "objectGeneration": resource["generation"],
        "eventTime": resource["timeCreated"],
    }
    return attrs, json.dumps(resource).encode()


def structured(out: send.Outgoing) -> tuple[dict[str, str], bytes]:
    document = {**out.attributes, "data": json.loads(out.body)}
    return {"Content-Type": "application/cloudevents+json; charset=UTF-8"}, json.dumps(document).encode()


def live(out: send.Outgoing) -> events.Event:
    return events.from_cloud_event(dict(out.attributes), json.loads(out.body))


def rebuilt(message: Pulled, topic: str | None = None) -> events.Event:
    carried = unwrap(message, topic)
    return events.from_cloud_event(carried.attributes, carried.data)


def conf_without_event(event: events.Event) -> dict[str, Any]:
    conf = build_conf(event)
    conf.pop(RESERVED_KEY)
    return conf


names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60),
    st.sampled_from(["é/ü/日本.csv", "a  b/%20/#?.csv", "x/_SUCCESS", "dir/", "../x.csv", "🙂.json", "a\u2028b"]),
).filter(lambda n: n.strip() != "")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=names,
    generation=st.integers(min_value=1, max_value=2**63 - 1).map(str),
    shape=st.sampled_from(["binary", "structured", "notification"]),
)
def test_a_dead_lettered_upload_is_the_live_event_again(name: str, generation: str, shape: str) -> None:
    out = send.storage_event("http://unused", "landing", name, generation, now=UPLOADED, metadata={"k": "é"})
    resource = json.loads(out.body)
    attrs, data = {"binary": binary, "structured": structured}.get(shape, lambda o: notification(resource))(out)
    event, original = rebuilt(dead_lettered(attrs, data)), live(out)
    assert run_id_for(event) == run_id_for(original)
    assert conf_without_event(event) == conf_without_event(original)
    assert event.storage is not None and (event.storage.name, event.storage.generation) == (name, generation)
    if shape != "notification":  # the ce-id travels in the message: even a template over event.id is the live one
        assert (event.id, event.time, event.subject) == (original.id, original.time, original.subject)


@settings(max_examples=80, deadline=None)
@given(
    data=st.binary(max_size=300),
    attributes=st.dictionaries(st.text(min_size=1, max_size=12).filter(lambda k: not k.startswith("Cloud")),
                               st.text(max_size=20), max_size=4),
)  # fmt: skip
def test_a_dead_lettered_pubsub_message_keeps_its_bytes_attributes_and_publish_time(
    data: bytes, attributes: dict[str, str]
) -> None:
    event = rebuilt(dead_lettered(attributes, data), TOPIC)
    assert event.kind is events.EventKind.PUBSUB and event.message is not None
    assert (event.message.data or b"") == data
    assert dict(event.message.attributes) == attributes  # the CloudPubSubDeadLetter* ones are not the sender's
    assert event.message.publish_time == event.time == "2026-12-05T08:00:00.123Z"  # the original, not the forwarding
    assert event.source == f"//pubsub.googleapis.com/{TOPIC}" and event.message.subscription == SOURCE


@pytest.mark.parametrize(
    "attributes, data, why",
    [
        ({"ce-id": "1", "ce-type": "t", "ce-source": "s", "ce-specversion": "1.0"}, b"{}", "dead lettering"),
        ({"eventType": "OBJECT_FINALIZE", "bucketId": "landing", "objectId": "a.csv"}, b'{"name": "b.csv"}', "differs"),
        ({"ce-id": "1", "ce-type": "t", "ce-specversion": "1.0"}, b"{}", "without ce-source"),
        ({"k": "v"}, b"plain", "--topic"),
        ({"Content-Type": "application/cloudevents+json"}, b"[1]", "without id"),
    ],
    ids=["not-forwarded", "payload-names-another-object", "no-source", "plain-without-topic", "structured-not-object"],
)
def test_what_is_not_a_dead_lettered_event_is_refused(attributes: dict[str, str], data: bytes, why: str) -> None:
    message = dead_lettered(attributes, data)
    if why == "dead lettering":
        message = Pulled("a", "1", data, attributes)
    with pytest.raises(NotCarried, match=why):
        unwrap(message)


# ------------------------------------------------------------------------------------------------ the REST subscriber


@pytest.fixture
def pubsub() -> Iterator[FakePubSub]:
    with FakePubSub() as fake:
        fake.create_subscription(DRAIN)
        yield fake


def test_the_subscriber_sends_google_credentials_and_retries_a_503(pubsub: FakePubSub) -> None:
    credentials = google.oauth2.credentials.Credentials(token="ya29.test-token")  # type: ignore[no-untyped-call]
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    session.mount("http://", HTTPAdapter(max_retries=retry_policy(5, attempts=3)))
    sub = Subscriber(DRAIN, session, pubsub.url)
    pubsub.publish(DRAIN, b"x", {"a": "b"})
    pubsub.faults.append(Answer(503, {"error": {"code": 503}}))
    messages, unreadable = sub.pull(10)
    assert [m.data for m in messages] == [b"x"] and unreadable == []
    assert sub.calls == 2  # the 503 and its retry
    sub.acknowledge([messages[0].ack_id])
    assert pubsub.remaining(DRAIN) == []
    tokens = [{k.lower(): v for k, v in s.headers.items()}.get("authorization") for s in pubsub.server.seen]
    assert tokens == ["Bearer ya29.test-token"] * 3


def test_a_refusal_names_the_role(pubsub: FakePubSub) -> None:
    pubsub.faults.append(Answer(403, {"error": {"code": 403, "message": "denied"}}))
    with pytest.raises(PubSubUnreachable, match=r"roles/pubsub\.subscriber"):
        Subscriber(DRAIN, requests.Session(), pubsub.url).pull(1)


# ------------------------------------------------------------------------------------------- drains against the fakes

_n = itertools.count()


@pytest.fixture(scope="module")
def gcs() -> Iterator[StorageEmulator]:
    with storage_emulator() as emulator:
        yield emulator


@pytest.fixture
def airflow() -> Iterator[FakeAirflow]:
    with FakeAirflow() as fake:
        yield fake


ROUTES = """
routes:
  - name: plain
    dag_id: ingest
    match: {{bucket: {bucket}, name: {{prefix: in/}}}}
  - name: refused
    dag_id: no_such_dag
    match: {{bucket: {bucket}, name: {{prefix: refused/}}}}
  - name: erp-default
    dag_id: erp
    match: {{kind: pubsub, topic: erp-events, attributes: {{kind: plain}}}}
  - name: erp-keyed
    dag_id: erp
    match: {{kind: pubsub, topic: erp-events, attributes: {{kind: keyed}}}}
    conf: {{order: attributes.order}}
    run_id: "erp__{{order}}"
"""


@dataclass
class World:
    gcs: StorageEmulator
    airflow: FakeAirflow
    pubsub: FakePubSub
    bucket: str
    pipeline: Pipeline
    client: Any

    def upload(self, name: str, body: bytes = b"a,b\n") -> send.Outgoing:
        blob = self.client.bucket(self.bucket).blob(name)
        blob.upload_from_string(body)
        stored = self.client.bucket(self.bucket).get_blob(name)._properties
        out = send.storage_event("http://unused", self.bucket, name, str(stored["generation"]), now=UPLOADED)
        body_json = {**json.loads(out.body), **{k: stored[k] for k in ("size", "md5Hash", "crc32c") if k in stored}}
        return replace(out, body=json.dumps(body_json).encode())

    def dead_letter(self, out: send.Outgoing, source: str = SOURCE) -> str:
        attrs, data = binary(out)
        return self.pubsub.publish_dead_letter(DRAIN, data, attrs, source=source)

    def drain(self, **over: Any) -> Any:
        session = requests.Session()
        options = DrainOptions(DRAIN, source_subscriptions=(SOURCE,), topic=TOPIC, **over)
        return drain(self.pipeline, Subscriber(DRAIN, session, self.pubsub.url), options, self.client)


@pytest.fixture
def world(gcs: StorageEmulator, airflow: FakeAirflow, pubsub: FakePubSub, tmp_path: Any) -> World:
    n = next(_n)
    bucket, dead = f"drain-landing-{n}", f"drain-ops-{n}"
    gcs.create_bucket(bucket)
    gcs.create_bucket(dead)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(bucket=bucket), encoding="utf-8")
    env = {
        "AIRFLOW_URI": airflow.url,
        "ROUTES_FILE": str(routes),
        "AIRFLOW_AUTH": "none",
        "AIRFLOW_RETRY_BUDGET_SECONDS": "2",
        "MAX_EVENT_AGE_SECONDS": str(7 * 86400),
    }
    clock = FakeClock(wall=UPLOADED + timedelta(hours=20))
    pipeline = function.build(env, clock=clock).pipeline
    client = gcs.client()
    pipeline.dead_letters = DeadLetterStore(f"gs://{dead}/dl", client=client, budget_s=5, clock=clock)
    return World(gcs, airflow, pubsub, bucket, pipeline, client)


def test_a_drain_sends_each_event_once_and_acks_only_what_is_accounted_for(world: World) -> None:
    sent, late, refused = world.upload("in/é 1.csv"), world.upload("in/late.csv"), world.upload("refused/r.csv")
    world.pipeline.process(live(late))  # a late delivery reached the function after the event was dead-lettered
    ids = {key: world.dead_letter(out) for key, out in (("sent", sent), ("late", late), ("refused", refused))}
    forged = world.pubsub.publish(DRAIN, sent.body, binary(sent)[0])  # published straight to the topic
    other = world.dead_letter(world.upload("in/other.csv"), source="projects/acct-proj/subscriptions/elsewhere")
    world.airflow.missing_dags.add("no_such_dag")

    dry = world.drain(dry_run=True)
    assert dry.counts == {"messages": 5, "would_trigger": 2, "present": 1, "refused": 2}
    assert (
        dry.acked == 0
        and len(world.airflow.runs) == 1
        and sorted(world.pubsub.remaining(DRAIN)) == sorted([*ids.values(), forged, other])
    )

    first = world.drain()
    assert first.counts == {"messages": 5, "triggered": 1, "duplicate": 1, "dead_lettered": 1, "refused": 2}
    assert (first.acked, first.left, first.ok) == (3, 2, False)
    assert sorted(world.pubsub.remaining(DRAIN)) == sorted([forged, other])
    assert sorted(run for _, run in world.airflow.runs) == sorted({run_id_for(live(sent)), run_id_for(live(late))})
    conf = world.airflow.runs[("ingest", run_id_for(live(sent)))]["conf"]
    assert conf["name"] == "in/é 1.csv" and conf[RESERVED_KEY]["via"] == "drain"
    (record,) = world.pipeline.dead_letters.list()  # type: ignore[union-attr]
    assert record[1].run_id == run_id_for(live(refused))

    second = world.drain()  # the two refused messages come back (given back at once), and are refused again
    assert second.counts == {"messages": 2, "refused": 2} and len(world.airflow.runs) == 2
    assert world.pubsub.deliveries(DRAIN)[forged] == 3  # dry run, first and second drain


def test_a_message_airflow_cannot_take_now_stays_and_goes_through_once_airflow_is_back(world: World) -> None:
    out = world.upload("in/retry.csv")
    world.dead_letter(out)
    world.pipeline.dead_letters = None
    world.airflow.faults.extend(Answer(503, {"detail": "busy"}) for _ in range(50))
    first = world.drain()
    assert first.counts == {"messages": 1, "retry": 1} and first.acked == 0 and world.airflow.runs == {}
    world.airflow.faults.clear()
    second = world.drain()
    assert second.counts == {"messages": 1, "triggered": 1} and second.acked == 1
    assert world.pubsub.remaining(DRAIN) == []


def test_an_upload_cloud_storage_contradicts_is_refused(world: World) -> None:
    real = world.upload("in/real.csv")
    body = {**json.loads(real.body), "size": "999999"}
    world.dead_letter(replace(real, body=json.dumps(body).encode()))
    gone = json.loads(real.body)["generation"] + "7"
    world.dead_letter(send.storage_event("http://unused", world.bucket, "in/real.csv", gone, now=UPLOADED))
    summary = world.drain()
    assert summary.counts == {"messages": 2, "refused": 2} and world.airflow.runs == {}
    reasons = sorted(s["reason"] for s in summary.samples)
    assert "does not exist" in reasons[0] and "size" in reasons[1]


def test_pubsub_messages_go_only_to_routes_whose_run_id_survives_the_new_message_id(world: World) -> None:
    keyed = {"kind": "keyed", "order": "A-17"}
    original = send.pubsub_event("http://unused", b"\x00\xff{not json", keyed, "erp-events")
    plain = send.pubsub_event("http://unused", b"x", {"kind": "plain"}, "erp-events")
    for out in (original, plain):
        message = json.loads(out.body)["message"]
        world.pubsub.publish_dead_letter(DRAIN, base64.b64decode(message.get("data", "")), message["attributes"])
    summary = world.drain()
    assert summary.counts == {"messages": 2, "triggered": 1, "refused": 1}
    assert list(world.airflow.runs) == [("erp", "erp__A-17")]  # the id the live message got from its route
    (refusal,) = [s for s in summary.samples if s["outcome"] == "refused"]
    assert "erp-default" in refusal["reason"] and "depends on the event id" in refusal["reason"]


def test_a_drain_is_bounded_by_max_messages(world: World) -> None:
    for i in range(5):
        world.dead_letter(world.upload(f"in/b{i}.csv"))
    summary = world.drain(batch=2, max_messages=3)
    assert summary.counts["triggered"] == 3 and not summary.complete
    assert len(world.pubsub.remaining(DRAIN)) == 2 and len(world.airflow.runs) == 3


def test_the_command_line_drains_an_empty_subscription_and_says_so(
    pubsub: FakePubSub, airflow: FakeAirflow, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {"AIRFLOW_URI": airflow.url, "DAG_ID": "ingest", "AIRFLOW_AUTH": "none",
                        "PUBSUB_EMULATOR_HOST": pubsub.url.removeprefix("http://")}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ROUTES_FILE", raising=False)
    assert cli.main(["drain", DRAIN, "--no-verify", "--budget", "1m"]) == 0
    out = capsys.readouterr()
    assert f"drain {DRAIN}: 0 messages" in out.out and "any subscription" in out.err
    with pytest.raises(SystemExit):
        cli.main(["drain", "subscriptions/x"])


def test_sweep_drain_drains_first_and_exits_with_the_worse_status(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    sent = world.upload("in/swept.csv")
    world.dead_letter(sent)
    world.pubsub.publish(DRAIN, b"{}", {"k": "v"})  # not forwarded by dead lettering: refused, left
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(bucket=world.bucket), encoding="utf-8")
    settings = {"AIRFLOW_URI": world.airflow.url, "ROUTES_FILE": str(routes), "AIRFLOW_AUTH": "none",
                "PUBSUB_EMULATOR_HOST": world.pubsub.url.removeprefix("http://")}  # fmt: skip
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAG_ID", raising=False)
    monkeypatch.setattr("dagtrigger.gcs._client", world.client)  # the process's client: the emulator
    args = ["sweep", "--since", "1h", "--settle", "0", "--bucket", world.bucket, "--drain", DRAIN,
            "--source-subscription", SOURCE]  # fmt: skip
    assert cli.main(args) == 1  # the refused message is left
    out = capsys.readouterr().out
    assert f"drain {DRAIN}: 2 messages: 1 triggered" in out and "sweep " in out
    assert list(world.airflow.runs) == [("ingest", run_id_for(live(sent)))]  # drained once; the sweep found it present


def test_a_slow_batch_is_held_again_so_nobody_else_gets_its_messages(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        world.dead_letter(world.upload(f"in/slow{i}.csv"))
    world.pipeline.settings = replace(world.pipeline.settings, max_in_flight=1)  # one message at a time
    competitor = Subscriber(DRAIN, requests.Session(), world.pubsub.url)
    stolen: list[str] = []
    process = world.pipeline.process

    def slow(event: events.Event, only: frozenset[str] | None = None) -> Any:
        world.pipeline.clock.advance(400)  # type: ignore[attr-defined]  # Airflow took 400 s (retries)
        world.pubsub.advance(400)
        stolen.extend(m.message_id for m in competitor.pull(10)[0])  # another drain pulls meanwhile
        return process(event, only)

    monkeypatch.setattr(world.pipeline, "process", slow)
    summary = world.drain(batch=3)
    assert summary.counts == {"messages": 3, "triggered": 3} and stolen == []
    assert world.pubsub.remaining(DRAIN) == []
