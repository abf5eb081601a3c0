"""Conf templates, run-id templates and the default conf per route; property tests that nothing crashes."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger import events
from dagtrigger.conf import RESERVED_KEY, build_conf
from dagtrigger.exceptions import BadEvent
from dagtrigger.render import TemplateError, render
from dagtrigger.rules import parse_rules
from dagtrigger.run_id import RUN_ID_MAX, RUN_ID_PATTERN, run_id_for
from dagtrigger.templates import Expression

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def one_route(**spec: Any):  # type: ignore[no-untyped-def]
    return parse_rules({"routes": [{"name": "r", "dag_id": "d", **spec}]}, "test").routes[0]


def upload(name: str = "landing/orders/dt=2026-11-24/part-0001.csv") -> events.Event:
    return events.from_cloud_event(storage_attrs(name=name), storage_data(name=name))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("dirname(name)", "landing/orders/dt=2026-11-24"),
        ("basename(name)", "part-0001.csv"),
        ("stem(name)", "part-0001"),
        ("extension(name)", "csv"),
        ("gcs_uri(bucket, name)", "gs://landing/landing/orders/dt=2026-11-24/part-0001.csv"),
        ("uri", "gs://landing/landing/orders/dt=2026-11-24/part-0001.csv"),
        ("folder_uri", "gs://landing/landing/orders/dt=2026-11-24/"),
        ("path_date(name)", "2026-11-24"),
        (r"regex_group(name, 'orders/dt=(\d{4})', `1`)", "2026"),
        ("regex_group(name, 'nomatch(x)', `1`)", None),
        ("upper(split(name, '/')[1])", "ORDERS"),
        ("replace(basename(name), '-', '_')", "part_0001.csv"),
        ("concat('n', `1`, '-', bucket)", "n1-landing"),
        ("object.contentType", "text/csv"),
        ("metadata.source", "erp"),
        ("to_number(object.size)", 1024),
        ("event.action", "finalized"),
        ('`"constant"`', "constant"),
        ("missing.field", None),
    ],
)
def test_expressions(expression: str, expected: Any) -> None:
    route = one_route(conf={"x": expression})
    assert render(upload(), route).conf["x"] == expected


@pytest.mark.parametrize(
    ("path", "date"),
    [("a/dt=2026-11-24/x", "2026-11-24"), ("a/2026/11/24/x", "2026-11-24"), ("x_2026-01-02.csv", "2026-01-02")],
)
def test_path_date_forms(path: str, date: str) -> None:
    assert Expression("path_date(name)", "t").evaluate({"name": path}) == date


def test_conf_base_event_overlays_and_none_replaces() -> None:
    overlaid = render(upload(), one_route(conf={"table": '`"orders"`'})).conf
    assert overlaid["table"] == "orders" and overlaid["bucket"] == "landing"
    replaced = render(upload(), one_route(conf={"table": '`"orders"`'}, conf_base="none")).conf
    assert set(replaced) == {"table", RESERVED_KEY}
    assert replaced[RESERVED_KEY]["route"] == "r"


def test_marker_route_conf_has_the_folder() -> None:
    conf = render(upload("out/dt=2026-11-24/_SUCCESS"), one_route(marker="_SUCCESS")).conf
    assert conf["folder"] == "out/dt=2026-11-24"
    assert conf["folder_uri"] == "gs://landing/out/dt=2026-11-24/"


def test_run_id_and_note_templates() -> None:
    route = one_route(conf={"date": "path_date(name)"}, run_id="orders__{date}", note="loaded {date} ({default})")
    rendered = render(upload(), route)
    assert rendered.run_id == "orders__2026-11-24"
    assert rendered.note is not None and rendered.note.startswith("loaded 2026-11-24 (gcs_finalized__")


def test_run_id_template_output_is_made_valid() -> None:
    route = one_route(conf={"n": "name"}, run_id="file {n}")
    rendered = render(upload("données/été.csv"), route)
    assert RUN_ID_PATTERN.fullmatch(rendered.run_id)
    assert rendered.run_id != render(upload("données/ete.csv"), route).run_id


def test_run_id_template_with_a_missing_value_fails_clearly() -> None:
    route = one_route(conf={"date": "path_date(name)"}, run_id="orders__{date}")
    with pytest.raises(TemplateError, match="date empty"):
        render(upload("no-date-here.csv"), route)


def test_relayed_storage_notification_gives_the_same_conf_and_run_id() -> None:
    name = "landing/orders/dt=2026-11-24/part-0001.csv"
    resource = storage_data(name=name)
    attributes = {
        "bucketId": "landing",
        "objectId": name,
        "eventType": "OBJECT_FINALIZE",
        "objectGeneration": resource["generation"],
        "payloadFormat": "JSON_API_V1",
        "notificationConfig": "projects/_/buckets/landing/notificationConfigs/1",
    }
    channels = frozenset(
        {
            ("landing", "projects/example-project/topics/orders"),
            ("landing", "projects/example-project/subscriptions/eventarc-sub"),
        }
    )
    message = pubsub_data(json.dumps(resource).encode(), attributes=attributes)
    relayed = events.from_cloud_event(pubsub_attrs(), message, channels)
    assert events.from_cloud_event(pubsub_attrs(), message).kind is events.EventKind.PUBSUB  # channel not declared
    direct = upload(name)
    assert relayed.kind is events.EventKind.STORAGE and relayed.action == "finalized"
    assert run_id_for(relayed) == run_id_for(direct)
    route = one_route(conf={"folder": "dirname(name)"})
    relayed_conf, direct_conf = render(relayed, route).conf, render(direct, route).conf
    relayed_conf.pop(RESERVED_KEY), direct_conf.pop(RESERVED_KEY)
    assert relayed_conf == direct_conf
    push = events.from_push_envelope(pubsub_data(b"", attributes={**attributes, "payloadFormat": "NONE"}), channels)
    assert push.kind is events.EventKind.STORAGE and run_id_for(push) == run_id_for(direct)


def test_pubsub_context_has_the_message() -> None:
    event = events.from_cloud_event(pubsub_attrs(), pubsub_data(b'{"table": "t"}', attributes={"env": "prod"}))
    conf = render(event, one_route(conf={"env": "attributes.env", "t": "body.table", "m": "message.message_id"})).conf
    assert (conf["env"], conf["t"], conf["m"]) == ("prod", "t", "11223344556677")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
ROUTE = one_route(
    conf={
        "folder": "dirname(name)",
        "date": "path_date(name)",
        "uri": "gcs_uri(bucket, name)",
        "first": "split(name, '/')[0]",
        "n": r"regex_group(name, '(\d+)', `1`)",
        "meta": "metadata",
    },
    run_id="f__{folder}__{default}",
)


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=300), metadata=st.dictionaries(st.text(max_size=20), st.text(max_size=40)))
def test_random_objects_never_crash_and_give_valid_run_ids(name: str, metadata: dict[str, str]) -> None:
    data = {**storage_data(name=name), "metadata": metadata}
    event = events.from_cloud_event(storage_attrs(), data)
    try:
        rendered = render(event, ROUTE)
    except TemplateError:
        assert "/" not in name or name.rpartition("/")[0] in ("", None)  # only an empty folder can fail here
        return
    assert RUN_ID_PATTERN.fullmatch(rendered.run_id) and len(rendered.run_id) <= RUN_ID_MAX
    json.dumps(rendered.conf)


@settings(max_examples=300, deadline=None)
@given(body=st.dictionaries(st.text(max_size=20), json_values, max_size=8), key=st.text(max_size=80))
def test_random_webhook_bodies_never_crash(body: dict[str, Any], key: str) -> None:
    raw = json.dumps(body).encode()
    headers = {"Idempotency-Key": key} if key else {}
    if any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(body)):
        with pytest.raises(BadEvent):  # NaN / Infinity are bad input, never retried
            events.from_webhook(raw, headers, "/")
        return
    event = events.from_webhook(raw, headers, "/")
    route = one_route(conf={"x": "body.a.b", "all": "keys(body)"})
    rendered = render(event, route)
    assert RUN_ID_PATTERN.fullmatch(rendered.run_id) and len(rendered.run_id) <= RUN_ID_MAX
    assert build_conf(event)[RESERVED_KEY]["body_sha256"]


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=300), attributes=st.dictionaries(st.text(max_size=20), st.text(max_size=20)))
def test_random_messages_never_crash(payload: bytes, attributes: dict[str, str]) -> None:
    data = pubsub_data(payload, attributes=attributes)
    event = events.from_cloud_event(pubsub_attrs(), data)
    route = one_route(conf={"d": "message.data", "a": "attributes"})
    rendered = render(event, route)
    assert RUN_ID_PATTERN.fullmatch(rendered.run_id)
    if payload and rendered.conf.get("data_base64"):
        assert base64.b64decode(rendered.conf["data_base64"]) == payload


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]
