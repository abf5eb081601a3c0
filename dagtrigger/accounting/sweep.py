"""``python -m dagtrigger sweep``: list what was uploaded in an interval, account for every (object version, route)
pair, and send the missing ones through the same pipeline as live events.

Bounded cost: the DAGs' runs are read in pages of 100 for the interval and the dead letters as one listing, so
Airflow sees about N/100 + M × (1 + retries) + a few calls for N matched pairs of which M are missing, never one
call per object. Bounded time: with ``budget``, the sweep stops between two objects, and a cursor next to the dead
letters lets the next sweep continue the same interval. Racing a live redelivery or another sweep is harmless: the
run id is the live one, so the second POST gets 409 (counted as present).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, parse_utc
from ..conf import documents
from ..deadletter import DeadLetterStore, utc_iso
from ..events import Event
from ..exceptions import BadEvent
from ..manifest import read_manifest
from ..outcome import OutcomeKind
from ..pipeline import Pipeline
from ..report import EventReport
from ..routing import Target, explain
from .cursor import Cursor, CursorStore
from .expect import Expectation, expect
from .interval import Interval
from .ledger import Calls, Ledger
from .listing import Listing, ObjectVersion, list_objects, plan
from .summary import SAMPLES, Summary, Tally
from .synthetic import finalized_event
from .verdict import Facts, Verdict, decide

# Runs and dead letters are read from this long before the interval: a clock difference between Cloud Storage and
# Airflow must not make an existing run look missing (a sweep that sent it anyway would only get a 409).
LEDGER_MARGIN = timedelta(hours=1)
_BACKLOG_PER_WORKER = 4  # sends queued per worker before the listing waits


@dataclass(frozen=True)
class SweepOptions:
    interval: Interval
    routes: tuple[str, ...] | None = None
    buckets: tuple[str, ...] = ()
    dry_run: bool = False
    budget_s: float = 0.0  # 0: none
    resume: bool = True


def facts_for(expectation: Expectation, ledger: Ledger, now: datetime) -> Facts:
    """What the ledger holds for one expectation (a batch run's members are listed on first use)."""
    member = expectation.member
    dead = ledger.dead_letter(expectation.dag_id, expectation.dead_letter_run_id) is not None
    run = ledger.run(expectation.dag_id, expectation.run_id) is not None
    if member is None:
        return Facts(run_exists=run and expectation.problem is None, dead_letter=dead)
    recorded = member.name in ledger.members(member.bucket, member.placement.prefix)
    return Facts(run, dead, batched=True, member_recorded=recorded, window_open=now < member.placement.window.end)


class _Sweep:
    def __init__(self, pipeline: Pipeline, options: SweepOptions, storage: Any, now: datetime, clock: Clock) -> None:
        self.pipeline = pipeline
        self.options = options
        self.storage = storage
        self.now = now
        self.clock = clock
        self.started = clock.monotonic()
        self.calls = Calls()
        self.calls.watch(pipeline.client)
        self.tally = Tally()
        self.ledger = Ledger(pipeline.client, storage, self.calls, pipeline.seal)
        self.routes = {route.name: i for i, route in enumerate(pipeline.rules.routes)}
        workers = max(1, pipeline.settings.max_in_flight)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep")
        self.backlog = threading.BoundedSemaphore(workers * _BACKLOG_PER_WORKER)
        self.sends: list[Future[None]] = []

    # -- reading

    def _read_manifest(self, bucket: str, name: str, max_bytes: int) -> Any:
        self.calls.add_storage(2)
        return read_manifest(bucket, name, max_bytes)

    def _over_budget(self) -> bool:
        budget = self.options.budget_s
        return budget > 0 and self.clock.monotonic() - self.started >= budget

    def account(self, obj: ObjectVersion, listing: Listing) -> None:
        """Decide every pair of this object with the listing's routes; send the missing ones."""
        uri = f"gs://{obj.bucket}/{obj.name}#{obj.generation}"
        try:
            event = finalized_event(obj.resource)
        except BadEvent as exc:
            for name in listing.routes:
                self.tally.note_failure(uri, name, f"cannot rebuild the event: {exc}")
            return
        verdicts = explain(event, self.pipeline.rules)
        docs = documents(event)
        missing: list[str] = []
        for name in listing.routes:
            route = self.pipeline.rules.routes[self.routes[name]]
            if verdicts.reasons[self.routes[name]] is not None or route.dag_id is None:
                self.tally.add(ignored=1)
                continue
            self.tally.add(matched=1)
            expectation = expect(event, Target(route, route.dag_id), docs, self._read_manifest, self.now)
            verdict = decide(facts_for(expectation, self.ledger, self.now))
            if verdict is Verdict.MISSING and self.options.dry_run and expectation.member is None:
                verdict = self._confirm(expectation)
            if verdict in (Verdict.TRIGGERED, Verdict.PENDING):
                self.tally.add(present=1, pending=int(verdict is Verdict.PENDING))
            elif verdict is Verdict.DEAD_LETTERED:
                self.tally.add(dead_lettered=1)
            else:
                self.tally.note_missing(uri, name, expectation.run_id)
                missing.append(name)
        if missing and not self.options.dry_run:
            self.backlog.acquire()
            self.sends.append(self.pool.submit(self._send, event, uri, frozenset(missing)))

    def _confirm(self, expectation: Expectation) -> Verdict:
        """A dry run asks Airflow about each pair the pages did not show (a run older than the margin): one GET per
        missing pair, the same as the POST a real sweep would make."""
        run = self.pipeline.client.get_run(expectation.dag_id, expectation.run_id)
        return Verdict.TRIGGERED if run is not None and expectation.problem is None else Verdict.MISSING

    # -- acting

    def _send(self, event: Event, uri: str, routes: frozenset[str]) -> None:
        try:
            report = self.pipeline.process(event, only=routes)
            self._count(report, uri, routes)
        except Exception as exc:  # a worker must not lose a pair silently
            for name in routes:
                self.tally.note_failure(uri, name, f"{type(exc).__name__}: {exc}")
        finally:
            self.backlog.release()

    def _count(self, report: EventReport, uri: str, routes: frozenset[str]) -> None:
        seen = set()
        for result in report.results:
            seen.add(result.target.name)
            kind = result.outcome.kind
            batched = result.target.route.batch is not None
            if kind is OutcomeKind.DONE or (batched and kind is OutcomeKind.DUPLICATE):
                self.tally.add(triggered=1)
                if batched:
                    self.ledger.forget_members(*_member_folder(result.target.route, result.run_id))
            elif kind is OutcomeKind.DUPLICATE:
                self.tally.add(raced=1, present=1)
            else:
                self.tally.note_failure(uri, result.target.name, result.outcome.reason)
        for name in routes - seen:
            self.tally.note_failure(uri, name, f"the pipeline did not route it: {report.reason}")

    def drain(self) -> None:
        for future in self.sends:
            future.result()
        self.sends.clear()

    # -- the whole sweep

    def run(self, store: DeadLetterStore | None, cursors: CursorStore | None) -> Summary:
        options = self.options
        listings, unswept = plan(self.pipeline.rules, options.routes, options.buckets)
        cursor = cursors.read() if cursors is not None and options.resume else None
        interval = options.interval
        if cursor is not None:
            interval = Interval(parse_utc(cursor.since), parse_utc(cursor.until))
        dags = {
            r.dag_id for r in self.pipeline.rules.routes if r.dag_id and any(r.name in li.routes for li in listings)
        }
        self.ledger.load_runs(dags, interval.since - LEDGER_MARGIN)
        if store is not None:
            self.ledger.load_dead_letters(store, interval.since - LEDGER_MARGIN)
        complete, position = True, None
        try:
            for listing in listings:
                if cursor is not None and listing.key in cursor.done:
                    continue
                after = cursor.after if cursor is not None and cursor.listing == listing.key else None
                for obj in list_objects(self.storage, listing, after, self.calls.add_storage):
                    self.tally.add(objects_listed=1)
                    if obj.created is None or not interval.holds(obj.created):
                        self.tally.add(outside_interval=1)
                    else:
                        self.account(obj, listing)
                    if self._over_budget():
                        complete, position = False, (listing.key, obj.name)
                        break
                if not complete:
                    break
            self.drain()
        finally:
            self.pool.shutdown(wait=True)
        cursor_uri = None
        if cursors is not None and not options.dry_run:
            if complete:
                cursors.clear()
            else:
                assert position is not None
                keys = [li.key for li in listings]
                done = tuple(keys[: keys.index(position[0])])
                cursors.write(Cursor(utc_iso(interval.since), utc_iso(interval.until), done, *position))
                cursor_uri = cursors.uri
        return Summary(
            counts=self.tally.counts(),
            airflow_calls=self.calls.airflow,
            storage_calls=self.calls.storage,
            seconds=self.clock.monotonic() - self.started,
            since=utc_iso(interval.since),
            until=utc_iso(interval.until),
            dry_run=options.dry_run,
            complete=complete,
            resumed=cursor is not None,
            cursor=cursor_uri,
            listings=tuple(li.describe() for li in listings),
            unswept=tuple({"route": u.route, "reason": u.reason} for u in unswept),
            failures=tuple(self.tally.failures),
            missing_pairs=tuple(self.tally.missing_pairs),
            refused_records=tuple(
                {"object": name, "reason": why} for name, why in sorted(self.ledger.refused.items())[:SAMPLES]
            ),
        )


def _member_folder(route: Any, run_id: str) -> tuple[str, str]:
    from ..batch.placement import members_prefix

    return route.batch.bucket, members_prefix(route.batch, route.dag_id, run_id)


def sweep(
    pipeline: Pipeline, options: SweepOptions, storage: Any, now: datetime | None = None, clock: Clock | None = None
) -> Summary:
    """Run one sweep with the function's own pipeline (settings, routes, Airflow client, dead-letter store).

    ``storage``: a google-cloud-storage client; ``now`` and ``clock`` (the time budget): the pipeline's clock unless
    given. Raises AirflowUnreachable / CredentialsUnavailable when Airflow's
    runs cannot be read, DeadLetterReadError when the dead letters cannot be listed."""
    store = pipeline.dead_letters
    cursors = None
    if pipeline.settings.dead_letter_uri:
        scope = "all" if options.routes is None else "+".join(sorted(options.routes))
        cursors = CursorStore(pipeline.settings.dead_letter_uri, scope, storage, lambda: None)
    runner = _Sweep(pipeline, options, storage, now or pipeline.clock.now(), clock or pipeline.clock)
    if cursors is not None:
        cursors.on_call = runner.calls.add_storage
    pipeline.client.api_version()
    return runner.run(store, cursors)
