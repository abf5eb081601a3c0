"""Dead letters: permanent failures kept as one JSON object per (DAG, run id) in Cloud Storage, read back for replay.

An event that failed for good is acknowledged only after its dead letter is written, so ``DeadLetterStore.write``
raises ``DeadLetterWriteError`` on any failure and the caller answers non-2xx (the platform redelivers). Records,
names and filters are pure functions below; only ``DeadLetterStore`` talks to Cloud Storage, and it imports
google-cloud-storage on first use (~0.35 s), so cold starts of events that never fail do not pay for it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from . import logs
from .events import IDEMPOTENCY_HEADERS, Event, from_cloud_event, from_push_envelope, from_webhook
from .exceptions import BadDeadLetter, ConfigError, DeadLetterError, DeadLetterReadError, DeadLetterWriteError
from .outcome import Kind

ENV_VAR = "DEAD_LETTER_URI"
EXAMPLE_URI = "gs://my-project-dagtrigger/dead-letters"
VERSION = 1
TRANSPORTS = ("cloudevent", "push", "webhook")
# A record counts as replayed once a replay created the run or found it already there.
REPLAYED_OUTCOMES = frozenset({Kind.DONE.value, Kind.DUPLICATE.value})
REPLAY_OUTCOMES = frozenset(kind.value for kind in Kind)
# Webhook headers worth keeping: what replay needs to derive the same run id. Everything else (Authorization,
# signatures, cookies) is dropped by this allow-list, never by a deny-list that could miss a new header.
SAFE_HEADERS = frozenset({"content-type", *(h.lower() for h in IDEMPOTENCY_HEADERS)})
# How far back a re-failing event's first record can be: Pub/Sub redelivers for up to 7 days, Eventarc for 24 h.
LOOKBACK_DAYS = 7
PAGE_SIZE = 500
MAX_CONFLICTS = 5  # concurrent writers of one record (412) before giving up
MAX_PREFIX_BYTES = 500  # object names are ≤ 1,024 bytes: prefix + 11 (date) + ≤ 250 (DAG) + ≤ 250 (run) + 7
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_DAY = re.compile(r"^\d{4}/\d{2}/\d{2}$")
_META_REPLAYED = "dagtrigger-replayed"
_SECRETS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[^\s'\",]+"), r"\1 ***"),
    (re.compile(r"(?i)\b(access_token|id_token|token|key|sig|signature|x-goog-signature)=[^&\s'\",]+"), r"\1=***"),
    (re.compile(r"\bya29\.[A-Za-z0-9._-]+"), "ya29.***"),
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@"), r"\1***@"),
)
_HINTS = {
    401: "; the storage credentials were refused",
    403: (
        "; grant the function's service account roles/storage.objectUser on the bucket "
        "(roles/storage.objectCreator cannot overwrite or mark a record)"
    ),
    404: f"; check that the bucket in {ENV_VAR} exists",
}


# ---------------------------------------------------------------------------------------------------- configuration


def parse_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/prefix`` → (bucket, prefix without slashes at either end; "" for the bucket root)."""

    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{ENV_VAR}: {problem} (example: {ENV_VAR}={EXAMPLE_URI})")

    value = uri.strip()
    if not value:
        raise bad("is empty: the gs://bucket/prefix where dead letters are written")
    if not value.startswith("gs://"):
        raise bad(f"{value[:100]!r} must start with gs://")
    bucket, _, prefix = value[len("gs://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket or any(len(part) > 63 for part in bucket.split(".")):
        raise bad(f"{bucket[:100]!r} is not a bucket name (3-63 lowercase letters, digits, '-', '_' or '.')")
    prefix = prefix.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise bad("the prefix must not contain empty, '.' or '..' segments")
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix) or any(c in prefix for c in "*?[]#"):
        raise bad("the prefix must not contain control characters, wildcards or '#'")
    if len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise bad(f"the prefix is over {MAX_PREFIX_BYTES} bytes")
    return bucket, prefix


# ------------------------------------------------------------------------------------------------------------- time


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC: every time in a record, a name and a filter is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``: sortable as text, readable in the console."""
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """The inverse of ``utc_iso`` (other ISO-8601 forms too, e.g. the event times Eventarc sends)."""
    return _utc(datetime.fromisoformat(text))


# ---------------------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Received:
    """The event as it arrived, kept so a replay parses it again exactly like the first delivery."""

    transport: str  # one of TRANSPORTS
    raw: Mapping[str, Any]
    attempts: int | None = None  # delivery attempts, when the transport says (Pub/Sub push deliveryAttempt)


def _jsonable(value: Any) -> Any:
    """A JSON copy of ``value`` (what will be stored); values JSON cannot hold become strings."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


def received_cloud_event(attributes: Mapping[str, Any], data: Any) -> Received:
    """A CloudEvent: its attributes, and its data as JSON, or ``{"_base64": …}`` when it arrived as bytes."""
    if isinstance(data, (bytes, bytearray)):
        stored: Any = {"_base64": base64.b64encode(bytes(data)).decode("ascii")}
    else:
        stored = _jsonable(data)
    return Received("cloudevent", {"attributes": _jsonable(dict(attributes)), "data": stored})


def received_push(body: Mapping[str, Any]) -> Received:
    """A Pub/Sub push envelope, whole (message, subscription, deliveryAttempt)."""
    attempt = body.get("deliveryAttempt")
    attempts = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0 else None
    return Received("push", {"body": _jsonable(dict(body))}, attempts)


def received_webhook(body: bytes, headers: Mapping[str, str], path: str) -> Received:
    """A webhook request: the exact body bytes, the path, and only the headers in SAFE_HEADERS (never secrets)."""
    kept = {name.lower(): str(value) for name, value in headers.items() if name.lower() in SAFE_HEADERS}
    return Received(
        "webhook",
        {"body_base64": base64.b64encode(body).decode("ascii"), "headers": dict(sorted(kept.items())), "path": path},
    )


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
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def replayed(self) -> bool:
        return is_replayed(self)

    def to_dict(self) -> dict[str, Any]:
        known = {
            "version": self.version,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "event_time": self.event_time,
            "dag_id": self.dag_id,
            "route": self.route,
            "run_id": self.run_id,
            "reason": self.reason,
            "status": self.status,
            "attempts": self.attempts,
            "first_seen": self.first_seen,
            "recorded_at": self.recorded_at,
            "last_seen": self.last_seen,
            "transport": self.transport,
            "raw": dict(self.raw),
            "replays": [dict(r) for r in self.replays],
        }
        return {**known, **{k: v for k, v in self.extra.items() if k not in known}}

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
            parse_time(recorded_at)
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
            extra={k: v for k, v in doc.items() if k not in _FIELDS},
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DeadLetter:
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadDeadLetter(f"a dead letter must be JSON: {exc}") from None
        return cls.from_dict(doc)


_FIELDS = frozenset(
    {
        "version",
        "event_id",
        "event_type",
        "event_time",
        "dag_id",
        "route",
        "run_id",
        "reason",
        "status",
        "attempts",
        "first_seen",
        "recorded_at",
        "last_seen",
        "transport",
        "raw",
        "replays",
    }
)


def new_record(
    received: Received,
    event: Event,
    *,
    dag_id: str,
    route: str,
    run_id: str,
    reason: str,
    status: int | None = None,
    attempts: int | None = None,
    first_seen: datetime | None = None,
    now: datetime | None = None,
) -> DeadLetter:
    """The record for one (event, DAG) that failed for good; ``attempts`` defaults to what the transport said, or 1."""
    if received.transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {received.transport!r}")
    moment = utc_iso(now or datetime.now(UTC))
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
        extra={**new.extra, **existing.extra},
    )


def _sort_time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)


def is_replayed(record: DeadLetter) -> bool:
    """Replayed = the last replay created the run or found it there; a failed or retried replay leaves it pending."""
    return bool(record.replays) and record.replays[-1].get("outcome") in REPLAYED_OUTCOMES


def check_outcome(outcome: str) -> str:
    """A replay outcome is an ``outcome.Kind`` value; a typo would otherwise silently count as "not replayed"."""
    if outcome not in REPLAY_OUTCOMES:
        raise ValueError(f"replay outcome must be one of {', '.join(sorted(REPLAY_OUTCOMES))}, got {outcome!r}")
    return outcome


def with_replay(record: DeadLetter, outcome: str, reason: str, at: datetime | None = None) -> DeadLetter:
    """``record`` with one more replay entry ``{"at", "outcome", "reason"}``."""
    entry = {"at": utc_iso(at or datetime.now(UTC)), "outcome": check_outcome(outcome), "reason": reason}
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
    if since is not None and recorded < _utc(since):
        return False
    if until is not None and recorded >= _utc(until):
        return False
    return include_replayed or not is_replayed(record)


def event_from_record(record: DeadLetter) -> Event:
    """Parse the stored event again with the same parsers as the first delivery, so a replay gets the same run id.

    Raises BadDeadLetter for a record whose ``raw`` this code cannot turn back into a request, and BadEvent when the
    parsers reject it (as they would have the first time).
    """
    raw = record.raw
    if record.transport == "cloudevent":
        attributes, data = raw.get("attributes"), raw.get("data")
        if not isinstance(attributes, Mapping):
            raise BadDeadLetter("dead letter raw.attributes must be an object")
        if isinstance(data, Mapping) and set(data) == {"_base64"}:
            data = _unbase64(data["_base64"], "raw.data._base64")
        return from_cloud_event(attributes, data)
    if record.transport == "push":
        body = raw.get("body")
        if not isinstance(body, Mapping):
            raise BadDeadLetter("dead letter raw.body must be an object")
        return from_push_envelope(body)
    if record.transport == "webhook":
        headers = raw.get("headers") or {}
        if not isinstance(headers, Mapping):
            raise BadDeadLetter("dead letter raw.headers must be an object")
        body_bytes = _unbase64(raw.get("body_base64"), "raw.body_base64")
        return from_webhook(body_bytes, {str(k): str(v) for k, v in headers.items()}, str(raw.get("path") or "/"))
    raise BadDeadLetter(f"dead letter transport {record.transport!r} is not one of {', '.join(TRANSPORTS)}")


def _unbase64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadDeadLetter(f"dead letter {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadDeadLetter(f"dead letter {what} is not valid base64") from None


# ------------------------------------------------------------------------------------------------------------ names


@dataclass(frozen=True)
class NameParts:
    day: date
    dag_id: str
    run_id: str


def _component(text: str) -> str:
    """One path segment: [A-Za-z0-9_.~-] stays as is (every valid DAG and run id); anything else is %-encoded."""
    if not text:
        raise ValueError("DAG id and run id must not be empty in a dead-letter name")
    encoded = quote(text, safe="")
    return {".": "%2E", "..": "%2E%2E"}.get(encoded, encoded)


def object_name(record: DeadLetter, prefix: str = "") -> str:
    """``<prefix>/<YYYY/MM/DD of recorded_at>/<dag_id>/<run_id>.json``: one object per (DAG, run id), in the folder
    of the day it was first recorded, so a redelivered event that fails again updates the same object."""
    return _name(prefix, _sort_time(record.recorded_at).date(), record.dag_id, record.run_id)


def _name(prefix: str, day: date, dag_id: str, run_id: str) -> str:
    head = f"{prefix}/" if prefix else ""
    return f"{head}{day:%Y/%m/%d}/{_component(dag_id)}/{_component(run_id)}.json"


def parse_name(name: str, prefix: str = "") -> NameParts | None:
    """The inverse of ``object_name``; None for objects under the prefix that are not dead letters."""
    head = f"{prefix}/" if prefix else ""
    if not name.startswith(head) or not name.endswith(".json"):
        return None
    parts = name[len(head) : -len(".json")].split("/")
    if len(parts) != 5 or not _DAY.match("/".join(parts[:3])) or not parts[3] or not parts[4]:
        return None
    try:
        day = date(int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None
    return NameParts(day, unquote(parts[3]), unquote(parts[4]))


def candidate_days(record: DeadLetter, lookback_days: int = LOOKBACK_DAYS) -> tuple[date, ...]:
    """The days, newest first, whose folder may already hold this (DAG, run id): from the record's day back to the
    event's own day (it cannot have failed before it happened), at most ``lookback_days``; an event without a time
    (a webhook) looks back one day."""
    newest = _sort_time(record.recorded_at).date()
    oldest = newest - timedelta(days=1)
    if record.event_time:
        try:
            oldest = min(parse_time(record.event_time).date(), newest)
        except ValueError:
            pass
    oldest = max(oldest, newest - timedelta(days=lookback_days))
    return tuple(newest - timedelta(days=i) for i in range((newest - oldest).days + 1))


def redact(text: str) -> str:
    """Masks bearer/basic credentials, token-like query parameters, OAuth access tokens and URL user-info."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _explain(action: str, where: str, exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    detail = " ".join(redact(str(exc)).split())[:600]
    hint = _HINTS.get(code, "") if isinstance(code, int) else ""
    if type(exc).__module__.startswith("google.auth"):
        hint = "; no usable Google credentials for Cloud Storage"
    return f"could not {action} {where}: {type(exc).__name__}: {detail or '(no detail)'}{hint}"


# ------------------------------------------------------------------------------------------------------------ store


@dataclass(frozen=True)
class _Stored:
    name: str
    data: bytes
    generation: int


class _Deadline:
    """One time budget for a whole operation (reads, the upload and their retries), so ``write`` ends in time."""

    def __init__(self, budget_s: float, timeout_s: float) -> None:
        self.end = time.monotonic() + budget_s
        self.timeout_s = timeout_s

    def options(self, retry: Any) -> dict[str, Any]:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError("the dead-letter time budget is spent")
        return {"timeout": min(self.timeout_s, max(left, 0.5)), "retry": retry.with_timeout(left)}


class DeadLetterStore:
    """Dead letters under ``gs://bucket/prefix``. One instance (and one storage client) per process, shared by
    concurrent requests: the client is built on first use under a lock; updates to one record are serialised in
    process by a lock and across processes by generation preconditions (412 → read again, merge, retry)."""

    def __init__(
        self,
        uri: str,
        client: Any = None,
        *,
        budget_s: float = 20.0,
        timeout_s: float = 10.0,
        lookback_days: int = LOOKBACK_DAYS,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.bucket_name, self.prefix = parse_uri(uri)
        self.uri = f"gs://{self.bucket_name}/{self.prefix}" if self.prefix else f"gs://{self.bucket_name}"
        self.budget_s = budget_s
        self.timeout_s = timeout_s
        self.lookback_days = lookback_days
        self.page_size = page_size
        self._client = client
        self._retry: Any = None
        self._init_lock = threading.Lock()
        self._locks = tuple(threading.Lock() for _ in range(64))

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.uri!r})"

    # -- plumbing

    def _storage(self) -> tuple[Any, Any]:
        """The client and the retry policy, built once: google-cloud-storage is imported here, not at start-up."""
        if self._retry is not None:
            return self._client, self._retry
        with self._init_lock:
            if self._retry is None:
                from google.cloud.storage.retry import DEFAULT_RETRY

                if self._client is None:
                    from google.cloud import storage

                    self._client = storage.Client()  # honours STORAGE_EMULATOR_HOST
                self._retry = DEFAULT_RETRY
            return self._client, self._retry

    def _lock(self, dag_id: str, run_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(f"{dag_id}\0{run_id}".encode()) % len(self._locks)]

    def _where(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{name}"

    def name_for(self, record: DeadLetter) -> str:
        return object_name(record, self.prefix)

    def _get(self, name: str, deadline: _Deadline) -> _Stored | None:
        """Contents and generation of one object, read consistently (the download is pinned to the generation)."""
        from google.api_core import exceptions as gexc

        client, retry = self._storage()
        bucket = client.bucket(self.bucket_name)
        for _ in range(MAX_CONFLICTS):
            blob = bucket.get_blob(name, **deadline.options(retry))
            if blob is None:
                return None
            generation = int(blob.generation)  # before the download, which resets it from response headers
            try:
                data = blob.download_as_bytes(if_generation_match=generation, **deadline.options(retry))
            except gexc.PreconditionFailed:
                continue  # replaced between the two calls: read the new one
            except gexc.NotFound:
                return None
            return _Stored(name, bytes(data), generation)
        raise DeadLetterReadError(f"{self._where(name)} kept changing while being read")

    def _put(self, name: str, record: DeadLetter, data: bytes, generation: int, deadline: _Deadline) -> None:
        """Upload only if the object is still at ``generation`` (0: only if absent); raises PreconditionFailed."""
        client, retry = self._storage()
        blob = client.bucket(self.bucket_name).blob(name)
        blob.metadata = {_META_REPLAYED: "true" if is_replayed(record) else "false"}
        blob.upload_from_string(
            data,
            content_type="application/json; charset=utf-8",
            if_generation_match=generation,
            **deadline.options(retry),
        )

    def _parse(self, stored: _Stored) -> DeadLetter:
        """An unreadable object at a record's name stops the update: overwriting it would lose what it holds."""
        try:
            return DeadLetter.from_json(stored.data)
        except BadDeadLetter as exc:
            raise DeadLetterWriteError(
                f"{self._where(stored.name)} is not a readable dead letter ({exc}); move it aside so this record "
                "can be written"
            ) from None

    def _update(
        self, stored: _Stored | None, build: Callable[[_Stored | None], tuple[str, DeadLetter]], deadline: _Deadline
    ) -> tuple[str, DeadLetter]:
        """Read-modify-write under a generation precondition; on 412 read again and rebuild, a bounded number of
        times. A 412 whose object already holds exactly our bytes is our own retried upload that landed: done."""
        from google.api_core import exceptions as gexc

        target = "?"
        for _ in range(MAX_CONFLICTS):
            target, record = build(stored)
            data = record.to_json().encode("utf-8")
            generation = stored.generation if stored and stored.name == target else 0
            try:
                self._put(target, record, data, generation, deadline)
                return target, record
            except gexc.PreconditionFailed:
                stored = self._get(target, deadline)
                if stored is not None and stored.data == data:
                    return target, record
        raise DeadLetterWriteError(f"{self._where(target)} was changed concurrently {MAX_CONFLICTS} times; not written")

    # -- public API

    def write(self, record: DeadLetter) -> str:
        """Record a permanent failure and return the object name; raises DeadLetterWriteError on any failure, in
        which case the event must not be acknowledged. Idempotent per (DAG, run id): an existing record for the
        pair (looked up over ``candidate_days``) is updated in place with ``merge``."""
        deadline = _Deadline(self.budget_s, self.timeout_s)
        where = f"for DAG {record.dag_id!r} run {record.run_id!r} in {self.uri}"
        try:
            with self._lock(record.dag_id, record.run_id):
                existing = self._find(record, deadline)

                def build(stored: _Stored | None) -> tuple[str, DeadLetter]:
                    if stored is None:
                        return self.name_for(record), record
                    return stored.name, merge(self._parse(stored), record)

                name, _ = self._update(existing, build, deadline)
                return name
        except DeadLetterWriteError:
            raise
        except Exception as exc:
            raise DeadLetterWriteError(_explain("write the dead letter", where, exc)) from exc

    def _find(self, record: DeadLetter, deadline: _Deadline) -> _Stored | None:
        """The existing record for this (DAG, run id), if any: one metadata GET per candidate day (usually one)."""
        for day in candidate_days(record, self.lookback_days):
            stored = self._get(_name(self.prefix, day, record.dag_id, record.run_id), deadline)
            if stored is not None:
                return stored
        return None

    def read(self, name: str) -> DeadLetter:
        """One record by object name; DeadLetterReadError when missing or unreadable, BadDeadLetter when corrupt."""
        try:
            stored = self._get(name, _Deadline(self.budget_s, self.timeout_s))
        except DeadLetterError:
            raise
        except Exception as exc:
            raise DeadLetterReadError(_explain("read", self._where(name), exc)) from exc
        if stored is None:
            raise DeadLetterReadError(f"no dead letter at {self._where(name)}")
        return DeadLetter.from_json(stored.data)

    def list(
        self,
        dag_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_replayed: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[str, DeadLetter]]:
        """Records matching ``matches`` (first recorded in [since, until); naive datetimes are UTC), in name order,
        fetched lazily page by page (``page_size``), at most ``limit``. Objects that are not readable records are
        skipped with a WARNING log. Raises DeadLetterReadError when listing or reading fails."""
        try:
            yield from self._list(dag_id, since, until, include_replayed, limit)
        except DeadLetterError:
            raise
        except Exception as exc:
            raise DeadLetterReadError(_explain("list", self.uri, exc)) from exc

    def _list(
        self,
        dag_id: str | None,
        since: datetime | None,
        until: datetime | None,
        include_replayed: bool,
        limit: int | None,
    ) -> Iterator[tuple[str, DeadLetter]]:
        from google.api_core import exceptions as gexc

        client, retry = self._storage()
        head = f"{self.prefix}/" if self.prefix else ""
        first_day = _utc(since).date() if since else None
        last_day = _utc(until).date() if until else None
        blobs = client.list_blobs(
            self.bucket_name,
            prefix=head or None,
            start_offset=f"{head}{first_day:%Y/%m/%d}/" if first_day else None,
            end_offset=f"{head}{last_day + timedelta(days=1):%Y/%m/%d}/" if last_day else None,
            page_size=self.page_size,
            timeout=self.timeout_s,
            retry=retry.with_timeout(self.budget_s),
        )
        found = 0
        for blob in blobs:  # the server may ignore the offsets (the emulator does): filter by name here too
            parts = parse_name(blob.name, self.prefix)
            if parts is None or (dag_id is not None and parts.dag_id != dag_id):
                continue
            if (first_day and parts.day < first_day) or (last_day and parts.day > last_day):
                continue
            if not include_replayed and (blob.metadata or {}).get(_META_REPLAYED) == "true":
                continue  # written together with the record, so it cannot disagree with it
            try:
                data = blob.download_as_bytes(timeout=self.timeout_s, retry=retry.with_timeout(self.budget_s))
                record = DeadLetter.from_json(data)
            except gexc.NotFound:
                continue  # rewritten (a new generation) or deleted since the listing
            except BadDeadLetter as exc:
                logs.get_logger().warning(
                    "skipped %s: not a dead-letter record: %s", self._where(blob.name), exc, extra={"dag_id": dag_id}
                )
                continue
            if matches(record, dag_id, since, until, include_replayed):
                yield blob.name, record
                found += 1
                if limit is not None and found >= limit:
                    return

    def mark_replayed(self, name: str, outcome: str, reason: str, at: datetime | None = None) -> DeadLetter:
        """Append ``{"at", "outcome", "reason"}`` to the record's replays and rewrite it (never deleted, so the trail
        stays); returns the updated record. Raises DeadLetterWriteError on any failure, ValueError on a bad
        outcome or a name that is not a dead letter under this store's prefix."""
        parts = parse_name(name, self.prefix)
        if parts is None:
            raise ValueError(f"{name!r} is not a dead-letter object name under {self.uri}")
        check_outcome(outcome)
        deadline = _Deadline(self.budget_s, self.timeout_s)

        def build(stored: _Stored | None) -> tuple[str, DeadLetter]:
            if stored is None:
                raise DeadLetterWriteError(f"no dead letter at {self._where(name)}: nothing to mark")
            return name, with_replay(self._parse(stored), outcome, reason, at)

        try:
            with self._lock(parts.dag_id, parts.run_id):
                return self._update(self._get(name, deadline), build, deadline)[1]
        except DeadLetterWriteError:
            raise
        except Exception as exc:
            raise DeadLetterWriteError(_explain("mark the replay of", self._where(name), exc)) from exc
