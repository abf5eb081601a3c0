"""One event on a batched route: record it as a member, make sure its window's run exists, and apply the late rule.

Order matters: the member is written *before* the run is created or checked, so a run that starts after the check
lists it. A member recorded after its run left ``queued`` (read from Airflow) is recorded again, ``late: true``, in
the window open now, whose run is then created: no member is lost to timing, and a key appears twice only as a late
copy in a later batch (the DAG dedupes by key).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..airflow import AirflowClient, TriggerCall
from ..clock import SYSTEM_CLOCK, Clock
from ..conf import EventDocuments, documents, refuse_conf
from ..events import Event
from ..exceptions import AirflowUnreachable, BatchError, CredentialsUnavailable, TemplateError
from ..outcome import Outcome, OutcomeKind, from_error
from ..render import render_batch
from ..routing import Target
from ..rules import BatchSpec
from ..run_id import run_id_for
from .members import MembersStore, MemberWriteError
from .placement import Placement, group_value, member_name, member_record, place, v1_logical_dates
from .single_flight import FreshRead, SingleFlight
from .windows import CLOCK_MARGIN_S, event_moment, window_for

MAX_LATE_HOPS = 3  # a late member whose next window also started (tiny windows, slow writes) moves on, bounded
_CREATED = frozenset({OutcomeKind.DONE, OutcomeKind.DUPLICATE})


@dataclass(frozen=True)
class MemberOutcome:
    """What happened to one member: the run it was (last) recorded into, the outcome, and whether it was late."""

    run_id: str
    outcome: Outcome
    late: bool = False


def _signed_only(target: Target, context: Mapping[str, Any]) -> Mapping[str, Any]:
    """What a route's batch group may read. Standard Webhooks sign the id, the timestamp and the body, not the URL:
    the group of such a route sees only the body (and its manifest), so no unsigned part of a captured request
    chooses a batch (issue 16)."""
    if target.route.webhook.scheme != "standard-webhooks" or context.get("kind") != "webhook":
        return context
    manifest = target.route.manifest.into if target.route.manifest is not None else None
    return {k: v for k, v in context.items() if k in ("kind", "body", manifest)}


class Batcher:
    """Per-process: the members store, the single flight per (DAG, run id), and the runs known to have started."""

    def __init__(
        self,
        client: AirflowClient,
        store: MembersStore,
        call: Callable[[TriggerCall], Outcome],
        max_conf_bytes: int,
        clock: Clock = SYSTEM_CLOCK,
        log: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self._call = call
        self.max_conf_bytes = max_conf_bytes
        self.clock = clock
        self.log = log or logging.getLogger("dagtrigger")
        self.flights: SingleFlight[tuple[str, str], Outcome] = SingleFlight(lambda o: o.kind in _CREATED)
        self.started: SingleFlight[tuple[str, str], bool] = SingleFlight(bool)
        self.states: FreshRead[tuple[str, str], str | None] = FreshRead(clock=clock)
        self.posts = 0  # trigger calls this process made for batches (retries, re-dated attempts not counted)
        self._posts_lock = threading.Lock()

    def add(
        self, event: Event, target: Target, manifest: Any = None, docs: EventDocuments | None = None
    ) -> MemberOutcome:
        """Record this event as a member of its window's batch and make sure that window's run exists."""
        spec = target.route.batch
        assert spec is not None
        docs = docs or documents(event)
        context = dict(docs.context)
        if target.route.manifest is not None:
            context[target.route.manifest.into] = manifest
        try:
            moment = event_moment(event.time, self.clock.now())
            group = group_value(spec, event.kind.value, _signed_only(target, context))
            window = window_for(moment, spec.window_s)
        except (BatchError, TemplateError) as exc:
            return MemberOutcome("", from_error(exc, "batch: "))
        member_conf = dict(docs.conf)
        if target.route.manifest is not None:
            member_conf[target.route.manifest.into] = manifest
        key = run_id_for(event)
        placement = first = place(spec, target.name, target.dag_id, group, window)
        for hop in range(MAX_LATE_HOPS + 1):
            late = hop > 0
            try:
                record = member_record(placement, key, member_conf, event.time, late)
                self.store.write(placement.bucket, member_name(placement.prefix, key), record)
            except MemberWriteError as exc:
                return MemberOutcome(placement.run_id, from_error(exc), late)
            written = self.clock.monotonic()
            outcome, created_now = self._ensure(target, placement, context)
            if outcome.kind in _CREATED and late:
                reason = f"late: run {first.run_id} had started, so the member is also in this one; {outcome.reason}"
                outcome = Outcome(outcome.kind, reason, outcome.status)
            if outcome.kind not in _CREATED or created_now:  # created after our write: the run will list us
                return MemberOutcome(placement.run_id, outcome, late)
            try:
                if not self._has_started(target.dag_id, placement, written):
                    return MemberOutcome(placement.run_id, outcome, late)
            except (AirflowUnreachable, CredentialsUnavailable) as exc:
                return MemberOutcome(placement.run_id, from_error(exc, "could not read the batch run's state: "))
            placement = self._late_placement(spec, target, group, placement)
        reason = f"batch: the runs of {MAX_LATE_HOPS + 1} windows started before this member was recorded"
        return MemberOutcome(placement.run_id, Outcome(OutcomeKind.RETRY, reason), True)

    def _late_placement(self, spec: BatchSpec, target: Target, group: str, previous: Placement) -> Placement:
        window = window_for(self.clock.now(), spec.window_s)
        if window.start <= previous.window.start:
            window = previous.window.next()
        return place(spec, target.name, target.dag_id, group, window)

    def _has_started(self, dag_id: str, placement: Placement, written: float) -> bool:
        """Whether the run left ``queued`` as read *after* our member was written (``written``, monotonic); not asked
        while the window is clearly still open (it cannot have started), and shared with concurrent members."""
        if self.clock.now() < placement.window.end - timedelta(seconds=CLOCK_MARGIN_S):
            return False
        key = (dag_id, placement.run_id)
        if self.started.known(key):
            return True
        state, _ = self.states.read(key, written, lambda: self.client.run_state(dag_id, placement.run_id))
        started = state is not None and state != "queued"
        if started:
            self.started.remember(key, True)
        return started

    def _ensure(self, target: Target, placement: Placement, context: Mapping[str, Any]) -> tuple[Outcome, bool]:
        """(outcome, whether this caller's POST created the run now). One POST per run per process, plus retries."""
        created = False

        def create() -> Outcome:
            nonlocal created
            outcome = self._create(target, placement, context)
            created = outcome.kind is OutcomeKind.DONE
            return outcome

        outcome, _ = self.flights.run((target.dag_id, placement.run_id), create)
        return outcome, created

    def _create(self, target: Target, placement: Placement, context: Mapping[str, Any]) -> Outcome:
        route = target.route
        try:
            rendered = render_batch(route, context, placement.batch_document(), placement.run_id)
        except TemplateError as exc:
            return from_error(exc, "conf could not be built: ")
        refused = refuse_conf(rendered.conf, self.max_conf_bytes, sender_fault=False)  # the route's templates made it
        if refused is not None:
            return refused
        dates = tuple(v1_logical_dates(route.name, placement.group, placement.window))  # Airflow 2 only
        return self._post(
            TriggerCall(
                target.dag_id,
                rendered.run_id,
                rendered.conf,
                rendered.note,
                run_after=placement.window.end,
                logical_dates=dates,
            )
        )

    def _post(self, call: TriggerCall) -> Outcome:
        with self._posts_lock:
            self.posts += 1
        outcome = self._call(call)
        self.log.debug(
            "batch run trigger POST: %s",
            outcome.kind.value,
            extra={"dag_id": call.dag_id, "run_id": call.run_id, "status": outcome.status},
        )
        return outcome
