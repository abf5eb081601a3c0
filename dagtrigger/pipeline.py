"""Carries one event through the stages: routes → conf and run id → Airflow call → outcome, logged once per target.

This is the only caller of the stages: the three entry points and ``sweep`` come through ``Pipeline.process``,
``replay`` through ``Pipeline.replay``, and both end in the same per-target trigger, so a fix here fixes every path.
"""

from __future__ import annotations

import base64
import importlib
import logging
import math
from dataclasses import replace
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, TextIO

from . import logs
from .airflow import AirflowClient, TriggerCall, make_session, no_redirect_session
from .airflow_auth import make_auth
from .clock import SYSTEM_CLOCK, Clock, parse_utc
from .exceptions import (
    BadDeadLetter,
    BadEvent,
    DeadLetterWriteError,
    ManifestError,
    TemplateError,
)
from .outcome import SEVERITY, Outcome, OutcomeKind, combine, from_error
from .redaction import redact
from .rules import Rules
from .settings import Settings

# Batches, dead letters, manifests and replayed webhooks are imported where they are used: a DAG_ID deployment or
# plain routes never use them, and at a cold start every import runs before the port opens (test_startup.py).
# The per-event stages too (events, routing, conf, render, run ids, the trigger call, reports): imported at the first
# event, or by the worker's warm-up right after the fork (``load_stages``), and not in gunicorn's master before the
# port opens; the master only validates the configuration and builds the pipeline.
if TYPE_CHECKING:
    from .batch.members import MembersStore
    from .conf import EventDocuments
    from .deadletter import DeadLetter, DeadLetterStore
    from .deadletter.seal import SealKeys
    from .events import Event
    from .report import EventReport, TargetResult
    from .routing import Target


STAGES = ("conf", "events", "render", "report", "routing", "run_id", "trigger")


def load_stages() -> None:
    """Import the per-event stages now (the worker's warm-up: off the first event's path)."""
    for name in STAGES:
        importlib.import_module(f"{__package__}.{name}")


def event_age_s(event: Event, now: datetime) -> float | None:
    """Seconds since the event happened (CloudEvent time / publish time) at ``now``; None when unknown or
    unparsable."""
    if not event.time:
        return None
    try:
        moment = parse_utc(event.time)
    except ValueError:
        return None
    return (now - moment).total_seconds()


class Pipeline:
    """Holds the per-process singletons (settings, HTTP session, credentials); safe to share between threads."""

    def __init__(
        self,
        settings: Settings,
        client: AirflowClient,
        rules: Rules,
        logger: logging.Logger | None = None,
        dead_letters: DeadLetterStore | None = None,
        members: MembersStore | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``clock`` is the one source of time for every stage (event age, batch windows, budgets, retries)."""
        self.settings = settings
        self.clock = clock
        self.client = client
        self.rules = rules
        self.log = logger or logs.get_logger()
        self.dead_letters = dead_letters
        self.batcher = None
        if any(r.batch is not None for r in rules.routes):
            from .batch.batcher import Batcher
            from .batch.members import MembersStore

            self.batcher = Batcher(
                client,
                members or MembersStore(clock=clock, seal=self.seal),
                self._call,
                settings.max_conf_bytes,
                clock=clock,
                log=self.log,
            )

    @cached_property
    def seal(self) -> SealKeys:
        """The keys that seal records and verify replays (DEAD_LETTER_SEAL_SECRET)."""
        from .deadletter.seal import SealKeys

        return SealKeys.from_texts(self.settings.dead_letter_seal_secrets)

    @classmethod
    def from_settings(
        cls, settings: Settings, rules: Rules, log_stream: TextIO | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> Pipeline:
        """The per-process singletons for ``settings``; ``clock`` is every stage's time (tests pass a fake one).
        Built by ``function.build``, the one place that reads the configuration."""
        logger = logs.configure(settings.log_level, settings.secrets(), log_stream)
        auth = make_auth(settings, no_redirect_session, clock)
        client = AirflowClient(
            settings.airflow_uri,
            auth,
            api_version=settings.api_version,
            timeout_s=settings.timeout_s,
            session=make_session(settings.retry_budget_s, pool_size=max(settings.max_in_flight, 4), clock=clock),
            retry_budget_s=settings.retry_budget_s,
            max_in_flight=settings.max_in_flight,
        )
        pipeline = cls(settings, client, rules, logger, clock=clock)
        if settings.dead_letter_uri:  # sealed with the pipeline's own keys: one reading of the secret for all
            from .deadletter import DeadLetterStore

            pipeline.dead_letters = DeadLetterStore(settings.dead_letter_uri, clock=clock, seal=pipeline.seal)
        return pipeline

    def process(self, event: Event, only: frozenset[str] | None = None) -> EventReport:
        """Trigger every DAG the event routes to; record permanent failures as dead letters (with the request as it
        arrived, ``event.delivery``). ``only``: the names of the routes to act on (``sweep`` sends an object only to
        the routes it found missing); None for all.

        Raises BadEvent(403) for a webhook naming a DAG no route allows.
        """
        from .conf import documents
        from .report import EventReport
        from .routing import route

        decision = route(event, self.rules)
        if decision.refused:
            raise BadEvent(decision.reason, 403)
        if only is not None:
            kept = tuple(t for t in decision.targets if t.name in only)
            decision = replace(decision, targets=kept, reason=decision.reason or "none of the routes asked for")
        if not decision.targets:
            self._log(decision.severity, decision.reason, event, outcome=OutcomeKind.IGNORED.value)
            return EventReport(event, OutcomeKind.IGNORED, decision.reason)
        docs = documents(event)  # once per event, whatever the number of routes
        results = tuple(self._conclude(event, self._trigger(event, target, docs)) for target in decision.targets)
        kind = combine([r.outcome for r in results])
        reasons = "; ".join(f"{r.target.dag_id}: {r.outcome.reason}" for r in results if r.outcome.kind is kind)
        return EventReport(event, kind, reasons, results)

    def _trigger(
        self, event: Event, target: Target, docs: EventDocuments, run_id_override: str | None = None
    ) -> TargetResult:
        """The stages for one target: manifest → conf and run id → size cap → Airflow call (or the batch)."""
        from .conf import refuse_conf
        from .render import render
        from .report import TargetResult
        from .run_id import route_run_id

        if target.route.batch is not None:
            return self._batched(event, target, docs)
        run_id = run_id_override  # the default id is computed by render, or below when rendering failed
        try:
            manifest = self._manifest(event, target, docs)
            rendered = render(event, target.route, manifest, docs)
        except TemplateError as exc:
            outcome = from_error(exc, "conf could not be built: ", sender_fault=True)
        except ManifestError as exc:
            outcome = from_error(exc)
        else:
            run_id = run_id_override or rendered.run_id
            refused = refuse_conf(rendered.conf, self.settings.max_conf_bytes, sender_fault=True)
            outcome = refused or self._call(TriggerCall(target.dag_id, run_id, rendered.conf, rendered.note))
        if run_id is None:
            run_id = route_run_id(event, target.route)
        return TargetResult(target, run_id, outcome)

    def _batched(self, event: Event, target: Target, docs: EventDocuments) -> TargetResult:
        """A batched route records the event as a member of its window's run (a replay too, under the same run id)."""
        from .report import TargetResult
        from .run_id import route_run_id

        assert self.batcher is not None
        try:
            manifest = self._manifest(event, target, docs)
        except TemplateError as exc:
            return TargetResult(target, "", from_error(exc, "manifest location could not be built: "))
        except ManifestError as exc:
            return TargetResult(target, "", from_error(exc))
        placed = self.batcher.add(event, target, manifest, docs)
        if placed.outcome.kind is not OutcomeKind.FAILED:
            return TargetResult(target, placed.run_id, placed.outcome)
        # A dead letter is kept per (DAG, run id): a failed member is kept under its own identity, not its batch's,
        # so two failed members of one batch stay two records (replay re-batches them either way).
        outcome = placed.outcome
        if placed.run_id:
            outcome = replace(outcome, reason=f"{outcome.reason} (batch run {placed.run_id})")
        return TargetResult(target, route_run_id(event, target.route), outcome)

    def _conclude(self, event: Event, result: TargetResult) -> TargetResult:
        """What becomes of one target's result: a too-old retry gives up, a failure is recorded; logged once."""
        outcome = self._give_up_if_too_old(event, result.outcome)
        outcome, recorded = self._record_failure(event, result, outcome)
        concluded = replace(result, outcome=outcome)
        self._log_result(event, concluded, recorded)
        return concluded

    def _give_up_if_too_old(self, event: Event, outcome: Outcome) -> Outcome:
        """A retry of an event older than MAX_EVENT_AGE_SECONDS becomes a failure (the platform would stop soon)."""
        age = event_age_s(event, self.clock.now())
        if outcome.kind is not OutcomeKind.RETRY or age is None or age <= self.settings.max_event_age_s:
            return outcome
        limit = int(self.settings.max_event_age_s)
        reason = f"gave up: the event is {int(age)} s old, over MAX_EVENT_AGE_SECONDS={limit}; {outcome.reason}"
        return Outcome(OutcomeKind.FAILED, reason, outcome.status)

    def _record_failure(self, event: Event, result: TargetResult, outcome: Outcome) -> tuple[Outcome, str | None]:
        """A failure is written as a dead letter (when configured) before the event is acknowledged; one that
        cannot be written turns back into a retry, so the event stays unacknowledged. Returns the object name."""
        if outcome.kind is not OutcomeKind.FAILED or self.dead_letters is None or event.delivery is None:
            return outcome, None
        from .deadletter import new_record

        record = new_record(
            event,
            dag_id=result.target.dag_id,
            route=result.target.name,
            run_id=result.run_id,
            reason=redact(outcome.reason),
            status=outcome.status,
            now=self.clock.now(),
        )
        try:
            return outcome, self.dead_letters.write(record)
        except DeadLetterWriteError as exc:
            return Outcome(OutcomeKind.RETRY, f"{outcome.reason}; the dead letter could not be written ({exc})"), None

    def replay(self, record: DeadLetter, accept_unsealed: bool = False) -> TargetResult:
        """Re-send one dead letter as its route would send it today (409 means it already ran: duplicate).

        Nothing in the record but the request it holds is trusted (the dead-letter bucket may be written by others):
        the request is parsed again, a webhook's stored signature must verify with the route's secret of today, the
        route the record names must take the event now, a storage event's object must exist in Cloud Storage as
        recorded (deadletter/proof.py), the record's seal must verify with DEAD_LETTER_SEAL_SECRET (deadletter/seal.py;
        unsealed: see ``unsealed_refusal``, ``accept_unsealed`` is the operator's --accept-unsealed), and that route
        decides the DAG, the run id and the conf (so a record written while DAG_ID named a wrong DAG goes to the
        corrected one).

        Raises BadDeadLetter (refused: not sent) when the record cannot be verified or no route takes it today.
        """
        from .conf import documents
        from .deadletter import event_from_record
        from .deadletter.proof import check_object
        from .deadletter.seal import unsealed_refusal
        from .routing import route

        sealed = self.seal.verified(record)  # BadDeadLetter when a seal is there and does not verify
        try:
            event = event_from_record(record, self.rules.notifications)
            if event.webhook is not None:
                event = self._verified_webhook(event)
        except BadEvent as exc:
            raise BadDeadLetter(f"the recorded request does not verify today: {exc}") from None
        other_proof = event.storage is not None or event.webhook is not None  # an object to ask, or a signature
        refusal = None if sealed else unsealed_refusal(self.seal, other_proof, accept_unsealed)
        if refusal:
            raise BadDeadLetter(refusal)
        decision = route(event, self.rules)
        target = next((t for t in decision.targets if t.name == record.route), None)
        if target is None:
            why = decision.reason or f"it goes to route(s) {', '.join(t.name for t in decision.targets)}"
            raise BadDeadLetter(f"route {record.route!r} does not take this event today ({why})")
        if event.storage is not None:  # no signature to check: Cloud Storage must confirm the object as recorded
            check_object(event.storage)
        result = self._trigger(event, target, documents(event))
        self._log_result(event, result, None)
        return result

    def _verified_webhook(self, event: Event) -> Event:
        """The recorded webhook with the routes its stored signature proves, checked as ``trigger_http`` checks it but
        for the timestamp (a replay is late by nature; the signature still binds the request to a route's secret)."""
        from . import sender_auth

        assert event.webhook is not None and event.delivery is not None
        raw = event.delivery.raw
        headers = {str(k): str(v) for k, v in (raw.get("headers") or {}).items()}
        body = base64.b64decode(str(raw.get("body_base64", "")))
        query = str(raw.get("query", "")).encode("ascii", "replace")
        signed = sender_auth.signed_request("POST", event.webhook.path, query, headers, body)
        settings = replace(self.settings, webhook_tolerance_s=math.inf)
        proven = sender_auth.authenticate_webhook(settings, self.rules, signed, headers, self.clock)
        if proven is None:
            raise BadEvent("WEBHOOK_AUTH=cloud-run-iam: a recorded webhook carries no proof of its sender", 401)
        return replace(event, webhook=replace(event.webhook, authenticated_routes=proven))

    def _manifest(self, event: Event, target: Target, docs: EventDocuments) -> Any:
        spec = target.route.manifest
        if spec is None:
            return None
        from .manifest import read_manifest
        from .render import manifest_location

        bucket, name = manifest_location(event, target.route, docs)
        return read_manifest(bucket, name, spec.max_bytes)

    def _call(self, call: TriggerCall) -> Outcome:
        """Every trigger (plain, batched, replayed) goes through trigger.py: a 409 counts only once our run is read."""
        from .trigger import trigger

        return trigger(self.client, call, self.clock)

    def _log_result(self, event: Event, result: TargetResult, recorded: str | None) -> None:
        kind = result.outcome.kind
        self._log(
            SEVERITY[kind],
            result.log_text(),
            event,
            dag_id=result.target.dag_id,
            run_id=result.run_id,
            outcome=kind.value,
            status=result.outcome.status,
            route=result.target.name,
            details={"dead_letter": recorded} if recorded else None,
        )

    def _log(self, severity: str, message: str, event: Event, **fields: Any) -> None:
        level = logging.getLevelName(severity)
        self.log.log(level, message, extra={"event_id": event.id, "event_type": event.type, **fields})
