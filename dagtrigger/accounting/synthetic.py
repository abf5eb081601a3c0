"""An object's metadata → the ``finalized`` event the function would have received for its upload.

Built by the parser of live CloudEvents (``events.from_cloud_event``) from the attributes Eventarc sets and the
object resource a listing returns (the same JSON API resource Eventarc sends as data), so routing, the conf and the
run id are the live ones. Two things differ, on purpose: ``_event.via`` names where it came from (``sweep`` or
``why``), and it carries no delivery, so a failure is reported, never written as a dead letter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .. import storage_events
from ..events import Event, from_cloud_event
from ..run_id import digest

FINALIZED_TYPE = storage_events.cloud_event_type(storage_events.FINALIZED)


def cloud_event_attributes(resource: Mapping[str, Any], event_id: str) -> dict[str, str]:
    """The CloudEvent attributes of a storage ``finalized`` event for this object (as Eventarc sets them); its time
    is the version's creation, which is when the upload finished."""
    bucket, name = str(resource["bucket"]), str(resource["name"])
    attributes = {
        "specversion": "1.0",
        "id": event_id,
        "type": FINALIZED_TYPE,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "bucket": bucket,
    }
    created = resource.get("timeCreated") or resource.get("updated")
    if created:
        attributes["time"] = str(created)
    return attributes


def finalized_event(resource: Mapping[str, Any], via: str = "sweep") -> Event:
    """The event for one object version; raises BadEvent when the resource lacks what identifies it."""
    key = digest("synthetic", str(resource.get("bucket")), str(resource.get("name")), str(resource.get("generation")))
    event_id = f"{via}-{resource.get('generation')}-{key}"
    event = from_cloud_event(cloud_event_attributes(resource, event_id), dict(resource))
    return replace(event, delivery=None, extra={"via": via})
