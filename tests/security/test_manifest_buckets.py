"""Finding 3 (second half): manifests are read only from buckets the route names (default: the event's own)."""

from __future__ import annotations

import json

import pytest

from dagtrigger import events
from dagtrigger.exceptions import TemplateError
from dagtrigger.render import manifest_location
from dagtrigger.rules import parse_rules
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def _route(manifest: dict[str, object]) -> object:
    rules = parse_rules({"routes": [{"name": "r", "dag_id": "d", "manifest": manifest}]}, "test")
    return rules.routes[0]


def test_default_is_the_storage_events_own_bucket() -> None:
    event = events.from_cloud_event(storage_attrs(), storage_data(bucket="landing", name="exports/a.csv"))
    assert manifest_location(event, _route({"object": "'exports/manifest.json'"})) == (  # type: ignore[arg-type]
        "landing",
        "exports/manifest.json",
    )
    with pytest.raises(TemplateError, match=r"not in manifest\.buckets"):
        manifest_location(event, _route({"object": "'m.json'", "bucket": "'secret-bucket'"}))  # type: ignore[arg-type]


def test_a_message_cannot_point_the_function_at_any_bucket() -> None:
    data = pubsub_data(json.dumps({"bucket": "secret-bucket", "object": "x/manifest.json"}).encode())
    event = events.from_cloud_event(pubsub_attrs(), data)
    spec = {"object": "body.object", "bucket": "body.bucket"}
    with pytest.raises(TemplateError, match=r"not in manifest\.buckets"):
        manifest_location(event, _route(spec))  # type: ignore[arg-type]
    allowed = _route({**spec, "buckets": ["secret-bucket"]})
    assert manifest_location(event, allowed) == ("secret-bucket", "x/manifest.json")  # type: ignore[arg-type]
