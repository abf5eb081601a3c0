"""``python -m dagtrigger drain SUBSCRIPTION``: send the events an Eventarc trigger's dead-letter topic kept through
the same pipeline as live events, and acknowledge each message only once its outcome is certain.

A message is acknowledged only when every route it goes to ended as a run (created now, or already there: 409), a
recorded batch member, or a dead letter written to ``DEAD_LETTER_URI``. Anything else is left in the subscription and
given back at the end of the run (delivered again to the next drain): Airflow unavailable, a failure with no
dead-letter store, a message no route takes today, one that cannot be rebuilt or verified. Nothing is trusted but
what the message proves: it must have been forwarded by Pub/Sub's dead lettering from the trigger's subscription
(``--source-subscription``), rebuild into an event today's routes take, and, for an upload, name an object version
that Cloud Storage has, with the same size and hashes. The run id is the live event's, so a drain after a late
delivery (or two drains at once) makes no second run; where the run id would depend on the message id the dead-letter
topic replaced, that route is not sent (docs/accounting.md).

Bounded: ``batch`` messages per pull, at most ``max_messages`` per run, a time budget; pulled messages are held
(their ack deadline extended) while the run lasts, so a drain never meets its own messages twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from ..clock import Clock
from ..conf import documents
from ..events import Event, from_cloud_event
from ..exceptions import BadEvent, DagtriggerError, ObjectUnreadable, PubSubUnreachable
from ..manifest import read_manifest
from ..outcome import OutcomeKind
from ..pipeline import Pipeline
from ..redaction import printable
from ..report import EventReport
from ..routing import Target, route
from .expect import expect
from .ledger import Calls
from .pubsub_rest import MAX_DEADLINE_S, Subscriber
from .unwrap import Carried, NotCarried, Pulled, unwrap
from .why import read_object

SAMPLES = 50  # messages shown by name in the summary
EMPTY_PULLS_TO_STOP = 2  # an empty pull answered at once can be early: stop after two in a row
# Fields of an uploaded object version that never change; a message claiming other values is not that upload.
_FIXED_FIELDS = ("size", "md5Hash", "crc32c")
_VERIFIABLE = ("google.cloud.storage.object.v1.finalized", "google.cloud.storage.object.v1.metadataUpdated")
ACKED = ("triggered", "duplicate", "dead_lettered")
LEFT = ("retry", "failed", "unrouted", "refused")


@dataclass(frozen=True)
class DrainOptions:
    subscription: str  # projects/P/subscriptions/S on the dead-letter topic
    source_subscriptions: tuple[str, ...] = ()  # the trigger subscriptions messages may come from; empty: any
    topic: str | None = None  # a Pub/Sub-source trigger's topic, projects/P/topics/T
    batch: int = 100
    max_messages: int = 1000
    budget_s: float = 0.0  # 0: none
    dry_run: bool = False
    verify_objects: bool = True
    ack_unrouted: bool = False


@dataclass(frozen=True)
class Handled:
    """What became of one message: ``outcome`` is one of ACKED or LEFT (or ``would_*`` in a dry run)."""

    message_id: str
    outcome: str
    reason: str = ""
    runs: tuple[dict[str, str], ...] = ()
    subject: str = ""


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, handled: Handled) -> None:
        with self._lock:
            self.counts[handled.outcome] = self.counts.get(handled.outcome, 0) + 1
            self.counts["messages"] = self.counts.get("messages", 0) + 1
            if len(self.samples) < SAMPLES and (handled.outcome not in ("duplicate",)):
                self.samples.append(
                    {"message_id": handled.message_id, "outcome": handled.outcome, "event": handled.subject,
                     "reason": handled.reason[:300], "runs": list(handled.runs)}
                )  # fmt: skip


@dataclass(frozen=True)
class DrainSummary:
    counts: dict[str, int]
    acked: int
    left: int
    pubsub_calls: int
    airflow_calls: int
    storage_calls: int
    seconds: float
    subscription: str
    dry_run: bool
    complete: bool
    samples: tuple[dict[str, Any], ...]

    @property
    def ok(self) -> bool:
        return not any(self.counts.get(k) for k in LEFT) and (self.dry_run or self.left == 0)

    def as_json(self) -> dict[str, Any]:
        keys = ("messages", *ACKED, *LEFT, "would_trigger", "present")
        return {
            **{key: self.counts.get(key, 0) for key in keys},
            "acked": self.acked,
            "left": self.left,
            "pubsub_calls": self.pubsub_calls,
            "airflow_calls": self.airflow_calls,
            "storage_calls": self.storage_calls,
            "seconds": round(self.seconds, 3),
            "subscription": self.subscription,
            "dry_run": self.dry_run,
            "complete": self.complete,
            "messages_sample": list(self.samples),
        }

    def text(self) -> str:
        c = self.as_json()
        if self.dry_run:
            head = (f"drain {self.subscription} (dry run): {c['messages']} messages: {c['would_trigger']} would "
                    f"trigger, {c['present']} present, {c['unrouted']} unrouted, {c['refused']} refused; "
                    f"nothing acknowledged")  # fmt: skip
        else:
            head = (f"drain {self.subscription}: {c['messages']} messages: {c['triggered']} triggered, "
                    f"{c['duplicate']} duplicate, {c['dead_lettered']} dead-lettered (acknowledged: {self.acked}); "
                    f"{c['retry']} retry, {c['failed']} failed, {c['unrouted']} unrouted, {c['refused']} refused "
                    f"(left in the subscription: {self.left})")  # fmt: skip
        lines = [
            head,
            f"calls: {self.pubsub_calls} to Pub/Sub, {self.airflow_calls} to Airflow, {self.storage_calls} to Cloud "
            f"Storage, in {self.seconds:.1f} s",
        ]
        if not self.complete:
            lines.append("stopped by --max-messages or the time budget: the next drain takes the rest")
        return "\n".join(lines)


def with_id(carried: Carried, new_id: str) -> Carried:
    """The same CloudEvent under another event (and message) id: what the live event may have had instead."""
    data = carried.data
    if carried.shape == "pubsub" and isinstance(data, Mapping):
        data = {**data, "message": {**data["message"], "messageId": new_id}}
    return replace(carried, attributes={**carried.attributes, "id": new_id}, data=data)


class _Drain:
    def __init__(self, pipeline: Pipeline, subscriber: Subscriber, options: DrainOptions, storage: Any, clock: Clock):
        self.pipeline = pipeline
        self.subscriber = subscriber
        self.options = options
        self.storage = storage
        self.clock = clock
        self.started = clock.monotonic()
        self.calls = Calls()
        self.calls.watch(pipeline.client)
        self.tally = Tally()
        self.acked_ids: set[str] = set()
        self.left: dict[str, str] = {}  # message id → its latest ack id, given back at the end
        self.acked = 0

    # -- one message

    def _read_manifest(self, bucket: str, name: str, max_bytes: int) -> Any:
        self.calls.add_storage(2)
        return read_manifest(bucket, name, max_bytes)

    def _source_problem(self, carried: Carried) -> str | None:
        allowed = self.options.source_subscriptions
        if allowed and carried.source_subscription not in allowed:
            return f"forwarded from {carried.source_subscription}, not from {', '.join(allowed)}"
        return None

    def _verify(self, event: Event) -> str | None:
        """Why Cloud Storage contradicts the upload this event names, or None (verified, or not verifiable)."""
        obj = event.storage
        if not self.options.verify_objects or obj is None or event.type not in _VERIFIABLE:
            return None
        self.calls.add_storage()
        try:
            stored = read_object(self.storage, obj.bucket, obj.name, obj.generation)
        except ObjectUnreadable as exc:
            return f"{exc}: not verified (deleted or overwritten since? --no-verify sends it anyway)"
        except Exception as exc:  # the storage client's errors: say which call, leave the message
            return f"could not read gs://{obj.bucket}/{obj.name}#{obj.generation}: {type(exc).__name__}"
        for key in _FIXED_FIELDS:
            claimed, actual = obj.resource.get(key), stored.get(key)
            if claimed not in (None, "") and actual not in (None, "") and str(claimed) != str(actual):
                return f"the message's {key} {str(claimed)[:40]!r} is not the object version's {str(actual)[:40]!r}"
        return None

    def _independent(self, carried: Carried, event: Event, targets: tuple[Target, ...]) -> tuple[str, ...]:
        """The routes whose run id (or batch member) is the same whatever the event id was: the only ones a drain
        may send when the dead-letter topic replaced the id."""
        other = from_cloud_event(*_ce(with_id(carried, f"{carried.attributes['id']}-other")))
        docs, other_docs, now = documents(event), documents(other), self.clock.now()
        kept = []
        for target in targets:
            one = expect(event, target, docs, self._read_manifest, now)
            two = expect(other, target, other_docs, self._read_manifest, now)
            member = (one.member.name if one.member else None, two.member.name if two.member else None)
            if one.problem is None and one.run_id == two.run_id and member[0] == member[1]:
                kept.append(target.name)
        return tuple(kept)

    def handle(self, message: Pulled) -> Handled:
        try:
            carried = unwrap(message, self.options.topic)
            problem = self._source_problem(carried)
            if problem:
                return Handled(message.message_id, "refused", problem)
            event = from_cloud_event(*_ce(carried), self.pipeline.rules.notifications)
        except (NotCarried, BadEvent) as exc:
            return Handled(message.message_id, "refused", str(exc))
        event = replace(event, extra={**event.extra, "via": "drain", "drained_message_id": message.message_id})
        subject = _describe(event)
        decision = route(event, self.pipeline.rules)
        if not decision.targets:
            return Handled(message.message_id, "unrouted", decision.reason or "no route takes it", subject=subject)
        only = None
        if carried.id_reconstructed:
            kept = self._independent(carried, event, decision.targets)
            dropped = [t.name for t in decision.targets if t.name not in kept]
            if dropped:
                reason = (f"the run id of route(s) {', '.join(dropped)} depends on the event id, which the dead-letter "
                          "topic replaced: sending it could double a run")  # fmt: skip
                return Handled(message.message_id, "refused", reason, subject=subject)
            only = frozenset(kept)
        problem = self._verify(event)
        if problem:
            return Handled(message.message_id, "refused", problem, subject=subject)
        if self.options.dry_run:
            return self._dry(message, event, decision.targets, subject)
        report = self.pipeline.process(event, only=only)
        return self._classify(message, report, subject)

    def _dry(self, message: Pulled, event: Event, targets: tuple[Target, ...], subject: str) -> Handled:
        docs, now, runs, absent = documents(event), self.clock.now(), [], False
        for target in targets:
            expectation = expect(event, target, docs, self._read_manifest, now)
            exists = expectation.member is None and (
                self.pipeline.client.get_run(expectation.dag_id, expectation.run_id) is not None
            )
            absent = absent or not exists
            state = "present" if exists else "would_trigger"
            runs.append({"route": target.name, "dag_id": target.dag_id, "run_id": expectation.run_id, "state": state})
        return Handled(message.message_id, "would_trigger" if absent else "present", "", tuple(runs), subject)

    def _classify(self, message: Pulled, report: EventReport, subject: str) -> Handled:
        if report.kind is OutcomeKind.IGNORED:
            return Handled(message.message_id, "unrouted", report.reason, subject=subject)
        recorded = self.pipeline.dead_letters is not None
        kinds = [r.outcome.kind for r in report.results]
        runs = tuple(
            {"route": r.target.name, "dag_id": r.target.dag_id, "run_id": r.run_id, "outcome": r.outcome.kind.value}
            for r in report.results
        )
        if OutcomeKind.RETRY in kinds:
            outcome = "retry"
        elif OutcomeKind.FAILED in kinds:
            outcome = "dead_lettered" if recorded else "failed"
        elif OutcomeKind.DONE in kinds:
            outcome = "triggered"
        else:
            outcome = "duplicate"
        reason = "" if outcome in ("triggered", "duplicate") else report.reason
        return Handled(message.message_id, outcome, reason, runs, subject)

    # -- the run

    def _over_budget(self) -> bool:
        budget = self.options.budget_s
        return budget > 0 and self.clock.monotonic() - self.started >= budget

    def _settle(self, handled: list[tuple[Pulled, Handled]]) -> None:
        ack = []
        for message, result in handled:
            self.tally.add(result)
            done = result.outcome in ACKED or (result.outcome == "unrouted" and self.options.ack_unrouted)
            if done and not self.options.dry_run:
                ack.append(message.ack_id)
                self.acked_ids.add(message.message_id)
            else:
                self.left[message.message_id] = message.ack_id
        if ack:
            self.subscriber.acknowledge(ack)
            self.acked += len(ack)

    def run(self) -> DrainSummary:
        options, workers = self.options, max(1, min(self.pipeline.settings.max_in_flight, self.options.batch))
        empty, complete, pulled = 0, True, 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="drain") as pool:
            try:
                while empty < EMPTY_PULLS_TO_STOP:
                    if pulled >= options.max_messages or self._over_budget():
                        complete = False
                        break
                    messages, unreadable = self.subscriber.pull(min(options.batch, options.max_messages - pulled))
                    held = [m.ack_id for m in messages] + [a for a, _ in unreadable]
                    if held:  # no redelivery to this run while it works on them (or keeps them aside)
                        self.subscriber.modify_deadline(held, MAX_DEADLINE_S)
                    for ack_id, reason in unreadable:
                        self.tally.add(Handled(ack_id[:40], "refused", reason))
                        self.left[f"ack:{ack_id}"] = ack_id
                    fresh = self._fresh(messages)
                    empty = 0 if fresh or unreadable else empty + 1
                    pulled += len(fresh) + len(unreadable)
                    results = self._process(pool, workers, fresh, held)
                    self._settle(list(zip(fresh, results, strict=True)))
            finally:
                self._give_back()
        return DrainSummary(
            counts=dict(self.tally.counts),
            acked=self.acked,
            left=len(self.left),
            pubsub_calls=self.subscriber.calls,
            airflow_calls=self.calls.airflow,
            storage_calls=self.calls.storage,
            seconds=self.clock.monotonic() - self.started,
            subscription=self.subscriber.subscription,
            dry_run=options.dry_run,
            complete=complete,
            samples=tuple(self.tally.samples),
        )

    def _process(self, pool: ThreadPoolExecutor, workers: int, batch: list[Pulled], held: list[str]) -> list[Handled]:
        """The batch's outcomes, ``workers`` messages at a time; when half the hold has passed (Airflow slow, retries),
        the batch and what this run leaves are held again, so Pub/Sub does not hand them to anyone meanwhile."""
        results: list[Handled] = []
        held_at = self.clock.monotonic()
        for start in range(0, len(batch), workers):
            if self.clock.monotonic() - held_at >= MAX_DEADLINE_S / 2:
                self.subscriber.modify_deadline([*held, *self.left.values()], MAX_DEADLINE_S)
                held_at = self.clock.monotonic()
            results += list(pool.map(self._safe_handle, batch[start : start + workers]))
        return results

    def _give_back(self) -> None:
        """What this run leaves goes back to the subscription now, so the next drain (or a person) sees it at once;
        if even that fails, the hold ends by itself within MAX_DEADLINE_S."""
        if self.left:
            try:
                self.subscriber.modify_deadline(list(self.left.values()), 0)
            except PubSubUnreachable:
                pass

    def _fresh(self, messages: list[Pulled]) -> list[Pulled]:
        """Messages this run has not seen; a redelivery of one it acknowledged is acknowledged again, one it left
        keeps its newest ack id."""
        fresh, again = [], []
        for message in messages:
            if message.message_id in self.acked_ids:
                again.append(message.ack_id)
            elif message.message_id in self.left:
                self.left[message.message_id] = message.ack_id
            else:
                fresh.append(message)
        if again:
            self.subscriber.acknowledge(again)
        return fresh

    def _safe_handle(self, message: Pulled) -> Handled:
        try:
            return self.handle(message)
        except DagtriggerError as exc:  # Airflow or Cloud Storage out of reach: the message waits for the next drain
            return Handled(message.message_id, "retry", str(exc))
        except Exception as exc:  # a worker must not lose a message silently
            return Handled(message.message_id, "failed", f"{type(exc).__name__}: {str(exc)[:200]}")


def _ce(carried: Carried) -> tuple[dict[str, Any], Any]:
    return carried.attributes, carried.data


def _describe(event: Event) -> str:
    if event.storage is not None:
        return printable(f"gs://{event.storage.bucket}/{event.storage.name}#{event.storage.generation}")
    if event.message is not None:
        return printable(f"{event.source} message {event.message.message_id}")
    return printable(f"{event.type} {event.id}")


def drain(
    pipeline: Pipeline, subscriber: Subscriber, options: DrainOptions, storage: Any = None, clock: Clock | None = None
) -> DrainSummary:
    """One drain with the function's own pipeline. ``storage``: a google-cloud-storage client (object verification);
    ``clock``: the pipeline's unless given. Raises PubSubUnreachable when the subscription cannot be pulled from or
    acknowledged (messages already acknowledged stay so; the rest come back after their ack deadline)."""
    return _Drain(pipeline, subscriber, options, storage, clock or pipeline.clock).run()
