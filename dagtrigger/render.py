"""Event + route → the conf, run id and note actually sent. Pure; raises TemplateError when a template cannot apply.

Without templates a route sends the default conf (see conf.py) and the default run id; a route's ``conf`` entries
are evaluated against the event's template context and laid over it (or replace it with ``conf_base: none``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .conf import RESERVED_KEY, EventDocuments, documents
from .events import Event
from .exceptions import TemplateError
from .rules import Route
from .run_id import route_run_id, safe_run_id

__all__ = ["Rendered", "TemplateError", "render", "render_batch"]


@dataclass(frozen=True)
class Rendered:
    """A route's conf, run id and note for one event."""

    conf: dict[str, Any]
    run_id: str
    note: str | None = None


def render(event: Event, route: Route, manifest: Any = None, docs: EventDocuments | None = None) -> Rendered:
    """``docs``: the event's documents when the caller already has them (one per event, whatever the routes)."""
    docs = docs or documents(event)
    context, base = docs.context, docs.conf
    conf: dict[str, Any] = dict(base) if route.conf_base == "event" else {}
    if route.marker is not None:
        conf.update(folder=context.get("folder", ""), folder_uri=context.get("folder_uri", ""))
    if route.manifest is not None:
        context = {**context, route.manifest.into: manifest}
        conf[route.manifest.into] = manifest
    for key, expression in route.conf:
        conf[key] = expression.evaluate(context)
    conf[RESERVED_KEY] = {**base[RESERVED_KEY], "route": route.name}
    default_id = route_run_id(event, route)
    run_id = default_id
    if route.run_id is not None:
        candidate = route.run_id.render({**conf, "default": default_id})
        run_id = safe_run_id(candidate, default_id.rpartition("__")[2])
    note = route.note.render({**conf, "default": default_id})[:1000] if route.note is not None else None
    return Rendered(conf, run_id, note)


def render_batch(route: Route, context: Mapping[str, Any], batch: Mapping[str, Any], run_id: str) -> Rendered:
    """The conf of a batch window's run: the route's conf templates over the first member's context plus ``batch``
    (the window, group and members folder), and ``batch`` itself; the run id is the window's, never a template's."""
    document = {**context, "batch": dict(batch)}
    conf = {key: expression.evaluate(document) for key, expression in route.conf}
    conf["batch"] = dict(batch)
    note = route.note.render({**conf, "default": run_id})[:1000] if route.note is not None else None
    return Rendered(conf, run_id, note)


def manifest_location(event: Event, route: Route, docs: EventDocuments | None = None) -> tuple[str, str]:
    """Bucket and object name of the route's manifest for this event (TemplateError when they cannot be built)."""
    assert route.manifest is not None
    context = (docs or documents(event)).context
    name = route.manifest.object.evaluate(context)
    bucket = route.manifest.bucket.evaluate(context) if route.manifest.bucket else context.get("bucket")
    if not isinstance(name, str) or not name or not isinstance(bucket, str) or not bucket:
        raise TemplateError(f"route {route.name!r}: manifest bucket/object did not evaluate to names for this event")
    allowed = route.manifest.buckets or route.named_buckets
    if bucket not in allowed:
        # The function reads with its own credentials: only buckets the route names (manifest.buckets, else the ones
        # its match.bucket names), never one an event names, so an event cannot make it read, and reveal, objects
        # elsewhere.
        raise TemplateError(f"route {route.name!r}: manifest bucket {bucket!r} is not in manifest.buckets")
    return bucket, name
