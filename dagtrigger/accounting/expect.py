"""Event + route → what the ledger should hold for it: the run id, the dead-letter key, the batch member.

Each identity comes from the module that makes it for live events (``render``/``run_id`` for runs, ``batch`` for
windows and members), so a sweep looks for exactly what the function would have written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..batch.placement import Placement, group_value, member_name, place
from ..batch.windows import event_moment, window_for
from ..conf import EventDocuments
from ..events import Event
from ..exceptions import BatchError, ManifestError, TemplateError
from ..render import manifest_location, render
from ..routing import Target
from ..run_id import route_run_id, run_id_for

# (bucket, object) → the manifest's JSON, for routes whose run id or batch group reads it
ManifestReader = Callable[[str, str, int], Any]


@dataclass(frozen=True)
class Member:
    """A batched route's member record for this event: the window's run and the member object."""

    placement: Placement
    bucket: str
    name: str


@dataclass(frozen=True)
class Expectation:
    """For one (object version, route): the run that should exist (plain routes) or the member that should be
    recorded (batched routes), and the (DAG, run id) a dead letter of it would have. ``problem``: why the live path
    cannot have made a run (a template or manifest failure), so only a dead letter can account for it."""

    route: str
    dag_id: str
    run_id: str
    dead_letter_run_id: str
    member: Member | None = None
    problem: str | None = None


def _manifest(event: Event, target: Target, docs: EventDocuments, read: ManifestReader) -> Any:
    spec = target.route.manifest
    if spec is None:
        return None
    bucket, name = manifest_location(event, target.route, docs)
    return read(bucket, name, spec.max_bytes)


def expect(event: Event, target: Target, docs: EventDocuments, read: ManifestReader, now: datetime) -> Expectation:
    """What the function would have written for ``event`` on ``target`` (``now``: the moment a batch member placed
    now is judged against, as the function's clock would be)."""
    route = target.route
    fallback = route_run_id(event, route)  # the id a failed event's dead letter is kept under
    needs_manifest = route.manifest is not None and (route.run_id is not None or route.batch is not None)
    try:
        manifest = _manifest(event, target, docs, read) if needs_manifest else None
        if route.batch is None:
            run_id = render(event, route, manifest, docs).run_id if route.run_id is not None else fallback
            return Expectation(route.name, target.dag_id, run_id, run_id)
        context = dict(docs.context)
        if route.manifest is not None:
            context[route.manifest.into] = manifest
        spec = route.batch
        window = window_for(event_moment(event.time, now), spec.window_s)
        placement = place(spec, route.name, target.dag_id, group_value(spec, event.kind.value, context), window)
        member = Member(placement, placement.bucket, member_name(placement.prefix, run_id_for(event)))
        return Expectation(route.name, target.dag_id, placement.run_id, fallback, member)
    except (TemplateError, ManifestError, BatchError) as exc:
        return Expectation(route.name, target.dag_id, fallback, fallback, problem=str(exc))
