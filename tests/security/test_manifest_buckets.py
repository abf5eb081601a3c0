"""Issue 9 finding 3 (second half), issue 16 finding 3: manifests are read only from buckets the route names —
``manifest.buckets``, else the buckets its ``match.bucket`` names — never from one an event names."""

from __future__ import annotations

import json

import pytest

from dagtrigger import events
from dagtrigger.exceptions import ConfigError, TemplateError
from dagtrigger.render import manifest_location
from dagtrigger.rules import parse_rules
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data


def _route(manifest: dict[str, object], match: dict[str, object] | None = None) -> object:
    route = {"name": "r", "dag_id": "d", "manifest": manifest, **({"match": match} if match else {})}
    return parse_rules({"routes": [route]}, "test").routes[0]


def test_default_is_the_bucket_the_route_names() -> None:
    event = events.from_cloud_event(storage_attrs(), storage_data(bucket="landing", name="exports/a.csv"))
    landing = {"bucket": "landing"}
    assert manifest_location(event, _route({"object": "'exports/manifest.json'"}, landing)) == (  # type: ignore[arg-type]
        "landing",
        "exports/manifest.json",
    )
    with pytest.raises(TemplateError, match=r"not in manifest\.buckets"):
        manifest_location(event, _route({"object": "'m.json'", "bucket": "'secret-bucket'"}, landing))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"manifest\.buckets: is required"):
        _route({"object": "'m.json'"})  # no bucket named: the event's bucket would be the default


def test_a_message_cannot_point_the_function_at_any_bucket() -> None:
    data = pubsub_data(json.dumps({"bucket": "secret-bucket", "object": "x/manifest.json"}).encode())
    event = events.from_cloud_event(pubsub_attrs(), data)
    spec = {"object": "body.object", "bucket": "body.bucket"}
    with pytest.raises(TemplateError, match=r"not in manifest\.buckets"):
        manifest_location(event, _route({**spec, "buckets": ["public-bucket"]}))  # type: ignore[arg-type]
    allowed = _route({**spec, "buckets": ["secret-bucket"]})
    assert manifest_location(event, allowed) == ("secret-bucket", "x/manifest.json")  # type: ignore[arg-type]
