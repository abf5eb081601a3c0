"""``python -m dagtrigger why gs://BUCKET/NAME``: what became of one upload, route by route, and why.

Reads the object's metadata, rebuilds the ``finalized`` event the function received for it, and for every route
asks the same routing, run-id and batch code the function runs, then Airflow (the run), the dead-letter store and
the batch members store. Reads only: it never triggers, writes or re-sends anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from ..airflow import RunInfo
from ..batch.members import member_problem
from ..clock import parse_utc
from ..conf import documents
from ..deadletter import LOOKBACK_DAYS, DeadLetterStore
from ..deadletter.seal import NO_KEYS, SealKeys
from ..exceptions import ObjectUnreadable
from ..gcs import default_retry
from ..manifest import read_manifest
from ..pipeline import Pipeline
from ..routing import Target, explain
from .expect import Expectation, expect
from .listing import takes_finalized
from .synthetic import finalized_event
from .verdict import Facts, Verdict, decide

_NOTES = {Verdict.MISSING: "the route takes this upload, but nothing accounts for it: run `sweep`"}


def parse_object_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/name`` → (bucket, name); ValueError otherwise (the name is kept exactly, slashes and all)."""
    if not uri.startswith("gs://"):
        raise ValueError(f"{uri[:100]!r} is not gs://BUCKET/NAME")
    bucket, _, name = uri[len("gs://") :].partition("/")
    if not bucket or not name:
        raise ValueError(f"{uri[:100]!r} is not gs://BUCKET/NAME (both a bucket and an object name)")
    return bucket, name


def read_object(storage: Any, bucket: str, name: str, generation: str | None) -> dict[str, Any]:
    """The object's JSON API resource (what the storage CloudEvent carries): the live version, or ``generation``."""
    blob = storage.bucket(bucket).get_blob(
        name, generation=int(generation) if generation else None, retry=default_retry()
    )
    if blob is None:
        which = f" generation {generation}" if generation else ""
        raise ObjectUnreadable(f"gs://{bucket}/{name}{which} does not exist (or is not readable)")
    resource = dict(blob._properties)
    resource.setdefault("bucket", bucket)
    return resource


@dataclass(frozen=True)
class RouteAnswer:
    route: str
    matched: bool
    reason: str
    dag_id: str | None
    run_id: str | None
    run: RunInfo | None
    dead_letter: dict[str, Any] | None
    batch: dict[str, Any] | None
    verdict: Verdict

    def as_json(self) -> dict[str, Any]:
        run = self.run
        return {
            "route": self.route,
            "matched": self.matched,
            "reason": self.reason,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "run_state": run.state if run else None,
            "run_start": run.start_date if run else None,
            "run_end": run.end_date if run else None,
            "dead_letter": self.dead_letter,
            "batch": self.batch,
            "verdict": self.verdict.value,
        }


def _days(created: str | None, today: date) -> list[date]:
    """The day folders a dead letter of this upload can be in: from its upload day to today, newest first."""
    oldest = today - timedelta(days=LOOKBACK_DAYS)
    try:
        oldest = max(oldest, parse_utc(created or "").date())
    except ValueError:
        pass
    return [today - timedelta(days=i) for i in range((today - oldest).days + 1)]


def _member(
    storage: Any, expectation: Expectation, run: RunInfo | None, now: datetime, seal: SealKeys = NO_KEYS
) -> tuple[bool, dict[str, Any]]:
    member = expectation.member
    assert member is not None
    blob = storage.bucket(member.bucket).get_blob(member.name, retry=default_retry())
    refused = None
    if blob is not None and seal:  # with keys a member counts only when its seal verifies (as sweep counts it)
        refused = member_problem(seal, member.bucket, member.name, blob.download_as_bytes(retry=default_retry()))
    recorded_at = blob._properties.get("updated") if blob is not None else None
    late = None
    if recorded_at and run is not None and run.start_date:
        late = parse_utc(recorded_at) > parse_utc(run.start_date)  # recorded after its window's run started
    window = member.placement.window
    return blob is not None and refused is None, {
        "run_id": member.placement.run_id,
        "group": member.placement.group,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "window_closed": now >= window.end,
        "member": f"gs://{member.bucket}/{member.name}",
        "member_recorded": blob is not None and refused is None,
        "late": late,
        **({"not_counted": refused} if refused else {}),
    }


def why(
    pipeline: Pipeline, storage: Any, uri: str, generation: str | None, now: datetime | None = None
) -> dict[str, Any]:
    """The answer for one object as JSON (``object`` and ``routes``). Raises ObjectUnreadable, ValueError (a bad URI),
    AirflowUnreachable / CredentialsUnavailable, DeadLetterReadError."""
    now = now or pipeline.clock.now()
    bucket, name = parse_object_uri(uri)
    resource = read_object(storage, bucket, name, generation)
    event = finalized_event(resource, via="why")
    verdicts = explain(event, pipeline.rules)
    docs = documents(event)
    store: DeadLetterStore | None = pipeline.dead_letters
    answers = []
    for route, reason in zip(pipeline.rules.routes, verdicts.reasons, strict=True):
        if reason is not None or route.dag_id is None:
            why_not = reason or "no dag_id"
            if not takes_finalized(route) and verdicts.ignored is None:
                why_not = f"{why_not} (the route does not take uploads)"
            answers.append(
                RouteAnswer(route.name, False, why_not, route.dag_id, None, None, None, None, Verdict.IGNORED)
            )
            continue
        expectation = expect(event, Target(route, route.dag_id), docs, read_manifest, now)
        run = pipeline.client.get_run(route.dag_id, expectation.run_id) if expectation.problem is None else None
        dead = None
        if store is not None:
            found = store.find(
                route.dag_id, expectation.dead_letter_run_id, _days(resource.get("timeCreated"), now.date())
            )
            if found is not None:
                dead = {
                    "object": f"gs://{store.bucket_name}/{found[0]}",
                    "reason": found[1].reason,
                    "replayed": found[1].replayed,
                }
                refused = store.accounts_for(found[0], route.dag_id, expectation.dead_letter_run_id)
                if refused is not None:  # seal keys set and the record does not verify: it proves nothing
                    dead["not_counted"] = refused
        batch, recorded = None, False
        if expectation.member is not None:
            recorded, batch = _member(storage, expectation, run, now, pipeline.seal)
            batch["run_state"] = run.state if run else None
        facts = Facts(
            run_exists=run is not None,
            dead_letter=dead is not None and "not_counted" not in dead,
            batched=expectation.member is not None,
            member_recorded=recorded,
            window_open=bool(batch and not batch["window_closed"]),
        )
        verdict = decide(facts)
        note = expectation.problem or _NOTES.get(verdict, "the route takes this upload")
        answers.append(RouteAnswer(route.name, True, note, route.dag_id, expectation.run_id, run, dead, batch, verdict))
    return {
        "object": {
            "uri": f"gs://{bucket}/{name}",
            "generation": str(resource.get("generation")),
            "created": resource.get("timeCreated"),
            "size": resource.get("size"),
            "content_type": resource.get("contentType"),
            "ignored": verdicts.ignored,
        },
        "routes": [a.as_json() for a in answers],
    }


def text(answer: dict[str, Any]) -> str:
    """The answer for a person: one block per route, its verdict first."""
    obj = answer["object"]
    lines = [
        f"{obj['uri']} generation {obj['generation']} (created {obj['created']}, {obj['size']} bytes, "
        f"{obj['content_type']})"
    ]
    for r in answer["routes"]:
        head = f"route {r['route']!r}" + (f" → DAG {r['dag_id']!r}" if r["matched"] else "")
        lines.append(f"{head}: {r['verdict'].upper()}  ({r['reason']})")
        if not r["matched"]:
            continue
        state = r["run_state"] or "no such run"
        times = f", started {r['run_start']}, ended {r['run_end']}" if r["run_start"] else ""
        lines.append(f"  run id {r['run_id']}: {state}{times}")
        dead = r["dead_letter"]
        lines.append(f"  dead letter: {dead['object']} ({dead['reason'][:200]})" if dead else "  dead letter: none")
        if dead and "not_counted" in dead:
            lines.append(f"  not counted: {dead['not_counted']}")
        batch = r["batch"]
        if batch:
            late = {True: ", late", False: "", None: ""}[batch["late"]]
            recorded = "recorded" if batch["member_recorded"] else "not recorded"
            closed = "closed" if batch["window_closed"] else "open"
            lines.append(
                f"  batch window {batch['window_start']} → {batch['window_end']} ({closed}), member "
                f"{recorded}{late}: {batch['member']}"
            )
            if "not_counted" in batch:
                lines.append(f"  member not counted: {batch['not_counted']}")
    return "\n".join(lines)


def dumps(answer: dict[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False, indent=2)
