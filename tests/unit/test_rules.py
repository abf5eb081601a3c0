"""Routing configuration: validation errors name the route and field; every matcher works on real-shape events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dagtrigger import events
from dagtrigger.exceptions import ConfigError
from dagtrigger.routing import route
from dagtrigger.rules import glob_to_regex, load_rules, parse_rules, single_route

from .samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def rules(*routes: dict[str, Any], **top: Any):  # type: ignore[no-untyped-def]
    return parse_rules({"routes": list(routes), **top}, "test")


def upload(name: str = "orders/dt=2026-11-24/part-0001.csv", **data_over: Any) -> events.Event:
    data = {**storage_data(name=name), **data_over}
    return events.from_cloud_event(storage_attrs(name=name), data)


def message(payload: bytes = b'{"type": "order"}', **attributes: str) -> events.Event:
    return events.from_cloud_event(pubsub_attrs(), pubsub_data(payload, attributes=attributes or {"k": "v"}))


def dags(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.dag_id for t in decision.targets]


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({}, "routes: must be a non-empty list"),
        ({"routes": [{"dag_id": "d"}]}, "routes[0].name: is required"),
        ({"routes": [{"name": "r"}]}, "route 'r'.dag_id: is required"),
        ({"routes": [{"name": "r", "dag_id": "bad dag"}]}, "route 'r'.dag_id"),
        ({"routes": [{"name": "r", "dag_id": "d", "match": {"size": {"min": -1}}}]}, "route 'r'.match.size.min"),
        ({"routes": [{"name": "r", "dag_id": "d", "match": {"name": {"regex": "("}}}]}, "route 'r'.match.name.regex"),
        ({"routes": [{"name": "r", "dag_id": "d", "match": {"event": ["created"]}}]}, "route 'r'.match.event"),
        ({"routes": [{"name": "r", "dag_id": "d", "match": {"colour": "red"}}]}, "unknown field(s) colour"),
        ({"routes": [{"name": "r", "dag_id": "d", "conf": {"x": "dirname("}}]}, "route 'r'.conf.x"),
        ({"routes": [{"name": "r", "dag_id": "d", "run_id": "{a.b}"}]}, "route 'r'.run_id"),
        ({"routes": [{"name": "r", "dag_id": "d"}, {"name": "r", "dag_id": "e"}]}, "must be unique: r"),
        ({"routes": [{"name": "r", "dag_id": "d", "marker": "a/_SUCCESS"}]}, "route 'r'.marker"),
    ],
)
def test_errors_name_the_route_and_field(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_rules(document, "ROUTES_FILE routes.yaml")
    assert fragment in str(info.value)
    assert "ROUTES_FILE routes.yaml" in str(info.value)


def test_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("routes:\n  - name: a\n    dag_id: dag_a\n    match: {bucket: landing}\n")
    (tmp_path / "r.json").write_text(json.dumps({"routes": [{"name": "b", "dag_id": "dag_b"}]}))
    assert load_rules(str(tmp_path / "r.yaml")).routes[0].dag_id == "dag_a"
    assert load_rules(str(tmp_path / "r.json")).routes[0].name == "b"
    (tmp_path / "bad.yaml").write_text("routes: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid yaml"):
        load_rules(str(tmp_path / "bad.yaml"))
    with pytest.raises(ConfigError, match="cannot read it"):
        load_rules(str(tmp_path / "missing.yaml"))


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("orders/*.csv", "orders/a.csv", True),
        ("orders/*.csv", "orders/x/a.csv", False),
        ("orders/**/*.csv", "orders/x/y/a.csv", True),
        ("orders/**/*.csv", "orders/a.csv", True),
        ("**/*.json", "a.json", True),
        ("data-?.txt", "data-1.txt", True),
        ("data-[0-9].txt", "data-x.txt", False),
        ("data-[!0-9].txt", "data-x.txt", True),
        ("a+b(1).csv", "a+b(1).csv", True),
    ],
)
def test_globs(pattern: str, name: str, matches: bool) -> None:
    assert bool(glob_to_regex(pattern).fullmatch(name)) is matches


def test_one_upload_fans_out_to_every_matching_route() -> None:
    r = rules(
        {"name": "csv", "dag_id": "load_csv", "match": {"name": {"suffix": ".csv"}}},
        {"name": "orders", "dag_id": "audit_orders", "match": {"name": {"prefix": "orders/"}}},
        {"name": "json", "dag_id": "load_json", "match": {"name": {"suffix": ".json"}}},
    )
    assert dags(route(upload(), r)) == ["load_csv", "audit_orders"]


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"bucket": "landing"}, True),
        ({"bucket": ["other", "landing"]}, True),
        ({"bucket": "other"}, False),
        ({"name": {"prefix": "orders/", "suffix": ".csv"}}, True),
        ({"name": {"glob": "orders/*/part-*.csv"}}, True),
        ({"name": {"regex": r"dt=\d{4}-\d{2}-\d{2}/"}}, True),
        ({"name": {"regex": r"^invoices/"}}, False),
        ({"content_type": "text/csv"}, True),
        ({"content_type": {"glob": "application/*"}}, False),
        ({"size": {"min": 1, "max": 2048}}, True),
        ({"size": {"min": 4096}}, False),
        ({"metadata": {"source": "erp"}}, True),
        ({"metadata": {"source": "crm"}}, False),
        ({"event": ["deleted"]}, False),
        ({"kind": "pubsub"}, False),
        ({"exclude": {"name": {"prefix": "orders/"}}}, False),
    ],
)
def test_storage_matchers(match: dict[str, Any], expected: bool) -> None:
    decision = route(upload(), rules({"name": "r", "dag_id": "d", "match": match}))
    assert bool(decision.targets) is expected
    if not expected:
        assert decision.reason.startswith("matched no route: route 'r': ")


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"kind": "pubsub", "attributes": {"k": "v"}}, True),
        ({"attributes": {"k": {"prefix": "x"}}}, False),
        ({"attributes": {"missing": "v"}}, False),
        ({"topic": "orders"}, True),
        ({"topic": {"glob": "inv*"}}, False),
        ({"body": {"type": "order"}}, True),
        ({"body": {"type": {"regex": "^ord"}}}, True),
        ({"body": {"type": "refund"}}, False),
        ({"bucket": "landing"}, False),
    ],
)
def test_pubsub_matchers(match: dict[str, Any], expected: bool) -> None:
    assert bool(route(message(), rules({"name": "r", "dag_id": "d", "match": match})).targets) is expected


def test_nested_body_fields_and_webhook_path() -> None:
    hook = events.from_webhook(b'{"order": {"status": "paid", "lines": [{"sku": "A1"}]}}', {}, "/hooks/shop")
    r = rules(
        {
            "name": "paid",
            "dag_id": "d",
            "match": {"kind": "webhook", "path": {"prefix": "/hooks/"}, "body": {"order.status": "paid"}},
        },
        {"name": "sku", "dag_id": "e", "match": {"body": {"order.lines.0.sku": "A1"}}},
    )
    assert dags(route(hook, r)) == ["d", "e"]


def test_builtin_ignore_rules() -> None:
    r = single_route("d", frozenset({"finalized"}))
    assert "folder placeholder" in route(upload("landing/2026/"), r).reason
    assert "temporary upload" in route(upload("out/_temporary/0/part-1"), r).reason
    assert "temporary upload" in route(upload("big.csv._COPYING_"), r).reason
    assert "temporary upload" in route(upload("gcloud/tmp/parallel_composite_uploads/x"), r).reason
    flagged = upload("processed/x.csv", metadata={"dagtrigger-ignore": "true"})
    assert "avoid a loop" in route(flagged, r).reason
    assert route(upload("landing/real.csv"), r).targets


def test_ignore_rules_can_be_turned_off() -> None:
    r = rules({"name": "r", "dag_id": "d"}, ignore={"placeholders": False, "temporary": False})
    assert route(upload("landing/2026/"), r).targets
    assert route(upload("x.tmp"), r).targets


def test_marker_routes_trigger_only_on_the_marker() -> None:
    r = rules({"name": "batch", "dag_id": "d", "marker": "_SUCCESS"})
    assert not route(upload("out/dt=2026-11-24/part-0.parquet"), r).targets
    assert route(upload("out/dt=2026-11-24/_SUCCESS"), r).targets


def test_shortcut_route_follows_storage_event_types() -> None:
    deleted = events.from_cloud_event(storage_attrs(type="google.cloud.storage.object.v1.deleted"), storage_data())
    assert not route(deleted, single_route("d", frozenset({"finalized"}))).targets
    assert route(deleted, single_route("d", frozenset({"finalized", "deleted"}))).targets


def test_webhook_may_name_only_allowed_dags() -> None:
    r = rules({"name": "hooks", "allow_dags": ["a", "b"], "match": {"kind": "webhook"}})
    allowed = events.from_webhook(b"{}", {}, "/dags/a")
    assert dags(route(allowed, r)) == ["a"]
    refused = route(events.from_webhook(b"{}", {}, "/dags/c"), r)
    assert refused.refused and "'c'" in refused.reason
    assert not route(events.from_webhook(b"{}", {}, "/"), r).targets


def test_shared_dag_routes_get_distinct_run_ids() -> None:
    r = rules({"name": "one", "dag_id": "d"}, {"name": "two", "dag_id": "d"})
    assert all(t.route.shares_dag for t in route(upload(), r).targets)
