"""The dead-letter record: one permanently failed (event, DAG) pair, its JSON form, and the pure rules on it
(merge a repeated failure, append a replay, the replay filter)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from ..clock import parse_utc, utc
from ..delivery import TRANSPORTS, Delivery
from ..events import Event, from_delivery
from ..exceptions import BadDeadLetter, BadEvent
from ..outcome import OutcomeKind
from ..storage_events import NO_CHANNELS, Channels
from ..strict_json import parse_json

VERSION = 1
# A record counts as replayed once a replay created the run or found it already there.
REPLAYED_OUTCOMES = frozenset({OutcomeKind.DONE.value, OutcomeKind.DUPLICATE.value})
REPLAY_OUTCOMES = frozenset(kind.value for kind in OutcomeKind)


def utc_iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: sortable as text, readable in the console."""
    return utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class DeadLetter:
    """One permanently failed (event, DAG) pair. Treat the mappings as read-only; ``extra`` keeps keys from newer
    versions of this format so that rewriting a record (marking a replay) never drops them."""

    event_id: str
    event_type: str
    event_time: str | None
    dag_id: str
    route: str
    run_id: str
    reason: str
    status: int | None
    attempts: int
    first_seen: str
    recorded_at: str
    transport: str
    raw: Mapping[str, Any]
    replays: tuple[Mapping[str, Any], ...] = ()
    last_seen: str | None = None  # when the latest failure of this (DAG, run id) was recorded
    version: int = VERSION
    # HMAC over what replay takes from the record (deadletter/seal.py); "" when written without a seal key.
    seal: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def replayed(self) -> bool:
        return is_replayed(self)

    def to_dict(self) -> dict[str, Any]:
        """The stored JSON object: ``version`` first, every field but ``extra``, then the keys ``extra`` kept."""
        known = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _FIELDS}
        known.update(raw=dict(self.raw), replays=[dict(r) for r in self.replays])
        if not self.seal:
            del known["seal"]  # an unsealed record is written as before sealing existed
        ordered = {"version": known.pop("version"), **known}
        return {**ordered, **{k: v for k, v in self.extra.items() if k not in ordered}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    @classmethod
    def from_dict(cls, doc: Any) -> DeadLetter:
        """Strict about what names and replays a record, lenient about the rest; BadDeadLetter when unusable."""
        if not isinstance(doc, Mapping):
            raise BadDeadLetter(f"a dead letter must be a JSON object, got {type(doc).__name__}")

        def text(key: str, required: bool = True) -> str | None:
            value = doc.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or (required and not value):
                raise BadDeadLetter(f"dead letter field {key!r} must be a non-empty string")
            return value

        def integer(key: str, default: int | None) -> int | None:
            value = doc.get(key, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                raise BadDeadLetter(f"dead letter field {key!r} must be an integer")
            return value

        version = integer("version", VERSION) or VERSION
        raw = {} if doc.get("raw") is None else doc["raw"]
        replays = [] if doc.get("replays") is None else doc["replays"]
        if not isinstance(raw, Mapping):
            raise BadDeadLetter("dead letter field 'raw' must be an object")
        if not isinstance(replays, list) or not all(isinstance(r, Mapping) for r in replays):
            raise BadDeadLetter("dead letter field 'replays' must be a list of objects")
        recorded_at = text("recorded_at") or ""
        try:
            parse_utc(recorded_at)
        except ValueError:
            raise BadDeadLetter(f"dead letter field 'recorded_at' is not ISO-8601: {recorded_at[:40]!r}") from None
        return cls(
            version=version,
            event_id=text("event_id") or "",
            event_type=text("event_type", required=False) or "",
            event_time=text("event_time", required=False),
            dag_id=text("dag_id") or "",
            route=text("route", required=False) or "",
            run_id=text("run_id") or "",
            reason=text("reason", required=False) or "",
            status=integer("status", None),
            attempts=integer("attempts", 1) or 1,
            first_seen=text("first_seen", required=False) or recorded_at,
            recorded_at=recorded_at,
            last_seen=text("last_seen", required=False),
            transport=text("transport", required=False) or "",
            raw=dict(raw),
            replays=tuple(dict(r) for r in replays),
            seal=text("seal", required=False) or "",
            extra={k: v for k, v in doc.items() if k not in _FIELDS},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        try:  # strict: depth-limited (a planted object of 5,000 nested '[' must not overflow the stack)
            doc = parse_json(text, "a dead letter")
        except BadEvent as exc:
            raise BadDeadLetter(str(exc)) from None
        return cls.from_dict(doc)


_FIELDS = frozenset(f.name for f in fields(DeadLetter)) - {"extra"}  # the record's own keys in its JSON form


def new_record(
    event: Event,
    *,
    dag_id: str,
    route: str,
    run_id: str,
    reason: str,
    status: int | None = None,
    attempts: int | None = None,
    now: datetime,
    first_seen: datetime | None = None,
    delivery: Delivery | None = None,
) -> DeadLetter:
    """The record for one (event, DAG) that failed for good, keeping the request as it arrived (``delivery``,
    default: the event's own); ``attempts`` defaults to what the transport said, or 1."""
    received = delivery or event.delivery
    if received is None:
        raise ValueError("the event carries no delivery to record")
    if received.transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {received.transport!r}")
    moment = utc_iso(now)
    return DeadLetter(
        event_id=event.id,
        event_type=event.type,
        event_time=event.time,
        dag_id=dag_id,
        route=route,
        run_id=run_id,
        reason=reason,
        status=status,
        attempts=max(1, attempts or received.attempts or 1),
        first_seen=utc_iso(first_seen) if first_seen else moment,
        recorded_at=moment,
        last_seen=moment,
        transport=received.transport,
        raw=received.raw,
    )


def merge(existing: DeadLetter, new: DeadLetter) -> DeadLetter:
    """The same (DAG, run id) failed again: what identifies it and when it was first seen and recorded stay (the
    first record wins, so its object name never moves); the latest failure's reason, status and route replace the
    old ones; ``attempts`` grows by one (or to what the platform counted); replays are kept."""
    first_seen = min(existing.first_seen, new.first_seen, key=_sort_time)
    return replace(
        existing,
        route=new.route,
        reason=new.reason,
        status=new.status,
        attempts=max(existing.attempts + 1, new.attempts),
        first_seen=first_seen,
        last_seen=new.last_seen or new.recorded_at,
        version=max(existing.version, new.version),
        seal="",  # the route and attempts changed: the writer seals the merged record again (DeadLetterStore.write)
        extra={**new.extra, **existing.extra},
    )


def _sort_time(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def is_replayed(record: DeadLetter) -> bool:
    """Replayed = the last replay created the run or found it there; a failed or retried replay leaves it pending."""
    return bool(record.replays) and record.replays[-1].get("outcome") in REPLAYED_OUTCOMES


def check_outcome(outcome: str) -> str:
    """A replay outcome is an ``outcome.OutcomeKind`` value; a typo would otherwise silently count as "not replayed"."""
    if outcome not in REPLAY_OUTCOMES:
        raise ValueError(f"replay outcome must be one of {', '.join(sorted(REPLAY_OUTCOMES))}, got {outcome!r}")
    return outcome


def with_replay(record: DeadLetter, outcome: str, reason: str, at: datetime) -> DeadLetter:
    """``record`` with one more replay entry ``{"at", "outcome", "reason"}``."""
    entry = {"at": utc_iso(at), "outcome": check_outcome(outcome), "reason": reason}
    return replace(record, replays=(*record.replays, entry))


def matches(
    record: DeadLetter,
    dag_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_replayed: bool = False,
) -> bool:
    """The replay filter: this DAG, first recorded in [since, until), and not replayed yet unless asked."""
    if dag_id is not None and record.dag_id != dag_id:
        return False
    recorded = _sort_time(record.recorded_at)
    if since is not None and recorded < utc(since):
        return False
    if until is not None and recorded >= utc(until):
        return False
    return include_replayed or not is_replayed(record)


def event_from_record(record: DeadLetter, channels: Channels = NO_CHANNELS) -> Event:
    """The record's event, parsed again by the parsers of its first delivery (``events.from_delivery``), with the
    relay channels the routes declare today."""
    return from_delivery(Delivery.stored(record.transport, record.raw, record.attempts), channels)
