"""Run ids: deterministic, readable, inside Airflow's alphabet. Pure functions, no I/O, no clock.

The run id is what makes redelivery harmless: the same event always yields the same id, Airflow answers 409 to the
second POST, and that counts as done. It is derived from what identifies the *thing* (the object version, the
message), not from the delivery, because Cloud Storage may re-send one object version under a new event id. Every
run id this package sends is made here: the default per event and route, a route template's result made safe, and
the pieces batch run ids are built from.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .events import Event, EventKind

if TYPE_CHECKING:
    from .rules import Route

RUN_ID_MAX = 250
# Airflow accepts ^[A-Za-z0-9_.~:+-]+$; we emit a stricter subset that both majors and URLs handle plainly.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,250}")  # always fullmatch: `$` would accept a trailing newline
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_HASH_CHARS = 12
OFFSET_SLOTS = 1_000_000  # microseconds in a second: Airflow stores logical dates to the microsecond
MAX_OFFSET_PROBES = 16
_PROJECT = re.compile(r"(?:^|/)projects/([^/]+)/")


def squash(text: str, limit: int, keep_tail: bool = False, empty: str = "x") -> str:
    """Squash a string into run-id characters, at most ``limit``; long names keep their tail (a file name) if asked."""
    safe = _UNSAFE.sub("_", text).strip("_.") or empty
    if len(safe) <= limit:
        return safe
    cut = safe[-limit:].lstrip("_.") if keep_tail else safe[:limit].rstrip("_.")
    return cut or "x"


def digest(*parts: Any, chars: int = _HASH_CHARS) -> str:
    """A short hex hash of the exact identity (the readable parts are squashed; this is not)."""
    canonical = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:chars]


def _compose(prefix: str, readable: list[tuple[str, int, bool]], hashed: str) -> str:
    """prefix__part__part__digest, each part squashed to its budget; total stays within RUN_ID_MAX."""
    pieces = [prefix] + [squash(text, limit, tail) for text, limit, tail in readable] + [hashed]
    return "__".join(pieces)  # the budgets above keep this within RUN_ID_MAX


def run_id_for(event: Event, salt: str | None = None) -> str:
    """Deterministic, readable, unique per object version / message / webhook key; always matches RUN_ID_PATTERN.

    ``salt`` (a route name) separates the runs of two routes that trigger the same DAG for one event.
    """
    if salt:
        return _salted(run_id_for(event), salt)
    if event.kind is EventKind.STORAGE and event.storage is not None:
        obj = event.storage
        action = event.action or "object"
        meta = obj.metageneration if action == "metadataUpdated" else None
        hashed = digest("gcs", event.type, obj.bucket, obj.name, obj.generation, meta)
        generation = obj.generation + (f"m{meta}" if meta else "")
        parts = [(obj.bucket, 63, False), (obj.name, 120, True), (generation, 24, False)]
        return _compose(f"gcs_{action}", parts, hashed)
    if event.kind is EventKind.PUBSUB and event.message is not None:
        # One message, one run, whatever the transport: Eventarc names the topic and a push subscription only
        # itself, but both carry the project and the message id (which Pub/Sub keeps across redeliveries).
        msg = event.message
        project = _project(event.source) or _project(msg.subscription) or "pubsub"
        hashed = digest("pubsub", project, msg.message_id)
        return _compose("pubsub", [(project, 80, False), (msg.message_id, 100, False)], hashed)
    if event.kind is EventKind.WEBHOOK and event.webhook is not None:
        hook = event.webhook
        key = hook.idempotency_key
        # Not the path: it is not signed by every scheme, and one key names one operation whatever URL carried it.
        hashed = digest("webhook", key or hook.body_sha256)
        return _compose("webhook", [(key or "body", 120, False)], hashed)
    return _compose("event", [(event.type, 80, False), (event.id, 100, False)], digest(event.type, event.id))


def _project(name: str | None) -> str | None:
    """The project of ``//pubsub.googleapis.com/projects/P/topics/T`` or ``projects/P/subscriptions/S``."""
    match = _PROJECT.search(name or "")
    return match.group(1) if match else None


def _salted(run_id: str, salt: str) -> str:
    head, _, hashed = run_id.rpartition("__")
    return f"{head[: RUN_ID_MAX - 80]}__{squash(salt, 64)}__{digest(hashed, salt)}"


def route_run_id(event: Event, route: Route) -> str:
    """The run id of ``event`` for ``route`` when the route has no run-id template: salted with the route's name
    where two routes trigger the same DAG (so each gets its own run), and always for webhooks: a sender's key names
    an operation of the route whose secret authenticated it, so one route's sender cannot take (pre-empt) the run
    id of the same key sent through another route."""
    scoped = route.shares_dag or event.kind is EventKind.WEBHOOK
    return run_id_for(event, route.name if scoped else None)


def safe_run_id(candidate: str, hashed: str) -> str:
    """A user template's result made valid: kept when already valid, else squashed and suffixed with a digest.

    Surrounding whitespace is dropped first, so ``123`` and ``123\n`` from a sender name the same run."""
    candidate = candidate.strip()
    if RUN_ID_PATTERN.fullmatch(candidate) and len(candidate) <= RUN_ID_MAX and candidate.strip("."):
        return candidate  # not '.', '..': a run id ends up in URL paths
    squashed = _UNSAFE.sub("_", candidate).strip("_.") or "run"
    return f"{squashed[: RUN_ID_MAX - len(hashed) - 2]}__{hashed}"


def logical_dates(start: datetime, *key: Any) -> Iterator[datetime]:
    """Airflow 2 logical dates of our own for one run, in the order to try: ``start`` plus an offset below one second.

    Airflow 2 keeps ``(dag_id, logical_date)`` unique, so runs that start in one second must not share a date: the
    offset is a hash of (``key``, attempt), where ``key`` names the run (a batch's route and group, an event's run
    id). Hashing 10,000 keys into 10^6 microseconds cannot avoid every collision (the birthday bound predicts ~50),
    so a taken date is detected (409 while our run id does not exist) and the next candidate is tried."""
    for attempt in range(MAX_OFFSET_PROBES):
        offset = int(digest("offset", *key, attempt, chars=15), 16) % OFFSET_SLOTS
        yield start + timedelta(microseconds=offset)
