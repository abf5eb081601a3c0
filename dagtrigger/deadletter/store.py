"""The dead-letter store: records in Cloud Storage, written before the ack, listed and marked for replay.

``DeadLetterStore.write`` raises ``DeadLetterWriteError`` on any failure and the caller answers non-2xx (the platform
redelivers). google-cloud-storage is imported on first use (~0.35 s), so cold starts of events that never fail do
not pay for it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from .. import logs
from ..clock import SYSTEM_CLOCK, Clock, utc
from ..exceptions import BadDeadLetter, DeadLetterError, DeadLetterReadError, DeadLetterWriteError
from ..gcs import HINTS, Deadline, client_and_retry, explain, location_uri
from .naming import ENV_VAR, LOOKBACK_DAYS, NameParts, _name, candidate_days, object_name, parse_name, parse_uri
from .record import DeadLetter, check_outcome, is_replayed, matches, merge, with_replay
from .seal import NO_KEYS, SealKeys

PAGE_SIZE = 500
_META_REPLAYED = "dagtrigger-replayed"
_HINTS = {
    **HINTS,
    403: (
        "; grant the function's service account roles/storage.objectUser on the bucket "
        "(roles/storage.objectCreator cannot overwrite or mark a record)"
    ),
    404: f"; check that the bucket in {ENV_VAR} exists",
}


def _explain(action: str, where: str, exc: BaseException) -> str:
    return explain(action, where, exc, _HINTS)


@dataclass(frozen=True)
class _Stored:
    name: str
    data: bytes
    generation: int


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
        clock: Clock = SYSTEM_CLOCK,
        seal: SealKeys = NO_KEYS,
    ) -> None:
        """``seal``: the keys records are sealed with when written (deadletter/seal.py); none: written unsealed."""
        self.clock = clock
        self.seal = seal
        self.bucket_name, self.prefix = parse_uri(uri)
        self.uri = location_uri(self.bucket_name, self.prefix)
        self.budget_s = budget_s
        self.timeout_s = timeout_s
        self.lookback_days = lookback_days
        self.page_size = page_size
        self._client = client
        self._locks = tuple(threading.Lock() for _ in range(64))

    def __repr__(self) -> str:
        return f"DeadLetterStore({self.uri!r})"

    # -- plumbing

    def _storage(self) -> tuple[Any, Any]:
        """The client (the process's, unless one was given) and the retry policy: imported here, not at start-up."""
        return client_and_retry(self._client)

    def _lock(self, dag_id: str, run_id: str) -> threading.Lock:
        return self._locks[zlib.crc32(f"{dag_id}\0{run_id}".encode()) % len(self._locks)]

    def _where(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{name}"

    def name_for(self, record: DeadLetter) -> str:
        return object_name(record, self.prefix)

    def _get(self, name: str, deadline: Deadline) -> _Stored | None:
        """Contents and generation of one object, read consistently (the download is pinned to the generation)."""
        from google.api_core import exceptions as gexc

        client, retry = self._storage()
        bucket = client.bucket(self.bucket_name)
        changed = 0
        while True:
            blob = bucket.get_blob(name, **deadline.options(retry))
            if blob is None:
                return None
            generation = int(blob.generation)  # before the download, which resets it from response headers
            try:
                data = blob.download_as_bytes(if_generation_match=generation, **deadline.options(retry))
            except gexc.PreconditionFailed:  # replaced between the two calls: read the new one
                changed += 1
                if deadline.wait_after_conflict(changed):
                    continue
                raise DeadLetterReadError(
                    f"{self._where(name)} changed {changed} times while being read in {deadline.spent():.1f} s"
                ) from None
            except gexc.NotFound:
                return None
            return _Stored(name, bytes(data), generation)

    def _put(self, name: str, record: DeadLetter, data: bytes, generation: int, deadline: Deadline) -> None:
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
        self, stored: _Stored | None, build: Callable[[_Stored | None], tuple[str, DeadLetter]], deadline: Deadline
    ) -> tuple[str, DeadLetter]:
        """Read-modify-write under a generation precondition; on 412 (another writer won the race) read again,
        rebuild and try again after a jittered wait, for as long as the time budget lasts. A 412 whose object already
        holds exactly our bytes is our own retried upload that landed: done. Races lost are logged (``lost_races``)."""
        from google.api_core import exceptions as gexc

        lost = 0
        while True:
            target, record = build(stored)
            data = record.to_json().encode("utf-8")
            generation = stored.generation if stored and stored.name == target else 0
            try:
                self._put(target, record, data, generation, deadline)
                break
            except gexc.PreconditionFailed:
                stored = self._get(target, deadline)
                if stored is not None and stored.data == data:
                    break
            lost += 1
            if not deadline.wait_after_conflict(lost):
                raise DeadLetterWriteError(
                    f"{self._where(target)} was changed by other writers {lost} times in {deadline.spent():.1f} s "
                    "(the storage time budget); not written"
                )
        if lost:
            logs.get_logger().info(
                "dead letter %s written after losing %d race(s) to other writers",
                self._where(target),
                lost,
                extra={"dag_id": record.dag_id, "run_id": record.run_id, "details": {"lost_races": lost}},
            )
        return target, record

    # -- public API

    def write(self, record: DeadLetter) -> str:
        """Record a permanent failure and return the object name; raises DeadLetterWriteError on any failure, in
        which case the event must not be acknowledged. Idempotent per (DAG, run id): an existing record for the
        pair (looked up over ``candidate_days``) is updated in place with ``merge``."""
        deadline = Deadline(self.budget_s, self.timeout_s, self.clock)
        where = f"for DAG {record.dag_id!r} run {record.run_id!r} in {self.uri}"
        try:
            with self._lock(record.dag_id, record.run_id):
                existing = self._find(record, deadline)

                def build(stored: _Stored | None) -> tuple[str, DeadLetter]:
                    if stored is None:
                        return self.name_for(record), self.seal.seal(record)
                    existing = self._parse(stored)
                    if self.seal and self.seal.problem(existing) is not None:
                        return stored.name, self._supersede(stored.name, existing, record)
                    return stored.name, self.seal.seal(merge(existing, record))

                name, _ = self._update(existing, build, deadline)
                return name
        except DeadLetterWriteError:
            raise
        except Exception as exc:
            raise DeadLetterWriteError(_explain("write the dead letter", where, exc)) from exc

    def _supersede(self, name: str, existing: DeadLetter, record: DeadLetter) -> DeadLetter:
        """Sealing is on and the record already at this name does not verify (written before the key was set, or
        planted): merging would seal what it holds, so this failure's own record replaces it."""
        logs.get_logger().warning(
            "dead letter %s replaced: the record there was not sealed with a current key (%s)",
            self._where(name),
            self.seal.problem(existing),
            extra={"dag_id": record.dag_id, "run_id": record.run_id},
        )
        return self.seal.seal(record)

    def _find(self, record: DeadLetter, deadline: Deadline) -> _Stored | None:
        """The existing record for this (DAG, run id), if any: one metadata GET per candidate day (usually one)."""
        for day in candidate_days(record, self.lookback_days):
            stored = self._get(_name(self.prefix, day, record.dag_id, record.run_id), deadline)
            if stored is not None:
                return stored
        return None

    def read(self, name: str) -> DeadLetter:
        """One record by object name; DeadLetterReadError when missing or unreadable, BadDeadLetter when corrupt."""
        try:
            stored = self._get(name, Deadline(self.budget_s, self.timeout_s, self.clock))
        except DeadLetterError:
            raise
        except Exception as exc:
            raise DeadLetterReadError(_explain("read", self._where(name), exc)) from exc
        if stored is None:
            raise DeadLetterReadError(f"no dead letter at {self._where(name)}")
        return DeadLetter.from_json(stored.data)

    def accounts_for(self, name: str, dag_id: str, run_id: str) -> str | None:
        """Why the record at ``name`` cannot be counted as the dead letter of (``dag_id``, ``run_id``), or None when
        it can. With seal keys the record is read: its seal must verify and it must record that very run (a sealed
        record copied to another run's name does not count). Without keys its name is taken at its word: nothing
        could prove more. Used by ``sweep`` and ``why``, so a record planted in the bucket cannot hide a lost
        upload from them."""
        if not self.seal:
            return None
        try:
            record = self.read(name)
        except (DeadLetterError, ValueError) as exc:
            return f"the record cannot be read ({exc})"
        if (record.dag_id, record.run_id) != (dag_id, run_id):
            return f"the record is of another run ({record.dag_id} {record.run_id})"
        return self.seal.problem(record)

    def list(
        self,
        dag_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        include_replayed: bool = False,
        limit: int | None = None,
        on_skip: Callable[[str, str], None] | None = None,
    ) -> Iterator[tuple[str, DeadLetter]]:
        """Records matching ``matches`` (first recorded in [since, until); naive datetimes are UTC), in name order,
        fetched lazily page by page (``page_size``), at most ``limit``. Objects that are not readable records are
        skipped with a WARNING log and ``on_skip(name, reason)``. Raises DeadLetterReadError when listing or reading
        fails."""
        try:
            yield from self._list(dag_id, since, until, include_replayed, limit, on_skip)
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
        on_skip: Callable[[str, str], None] | None = None,
    ) -> Iterator[tuple[str, DeadLetter]]:
        from google.api_core import exceptions as gexc

        client, retry = self._storage()
        head = f"{self.prefix}/" if self.prefix else ""
        first_day = utc(since).date() if since else None
        last_day = utc(until).date() if until else None
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
                if on_skip is not None:
                    on_skip(blob.name, f"not a dead-letter record: {exc}")
                continue
            if matches(record, dag_id, since, until, include_replayed):
                yield blob.name, record
                found += 1
                if limit is not None and found >= limit:
                    return

    def keys(self, since: datetime, on_page: Callable[[], None] | None = None) -> Iterator[tuple[str, NameParts]]:
        """Names of the records first recorded on ``since``'s day or later, without reading them (``sweep`` only needs
        to know which (DAG, run id) pairs have one): one listing call per page; ``on_page`` is called per page.
        Raises DeadLetterReadError when listing fails."""
        try:
            client, retry = self._storage()
            head = f"{self.prefix}/" if self.prefix else ""
            first_day = utc(since).date()
            blobs = client.list_blobs(
                self.bucket_name,
                prefix=head or None,
                start_offset=f"{head}{first_day:%Y/%m/%d}/",
                page_size=self.page_size,
                fields="items(name),nextPageToken",
                timeout=self.timeout_s,
                retry=retry.with_timeout(self.budget_s),
            )
            for page in blobs.pages:
                if on_page is not None:
                    on_page()
                for blob in page:
                    parts = parse_name(blob.name, self.prefix)
                    if parts is not None and parts.day >= first_day:
                        yield blob.name, parts
        except DeadLetterError:
            raise
        except Exception as exc:
            raise DeadLetterReadError(_explain("list", self.uri, exc)) from exc

    def find(self, dag_id: str, run_id: str, days: Iterable[date]) -> tuple[str, DeadLetter] | None:
        """The record of (DAG, run id) if one was first recorded on one of ``days`` (one GET per day tried), for
        ``why``. Raises DeadLetterReadError when reading fails, BadDeadLetter when the object is not a record."""
        deadline = Deadline(self.budget_s, self.timeout_s, self.clock)
        for day in days:
            name = _name(self.prefix, day, dag_id, run_id)
            try:
                stored = self._get(name, deadline)
            except DeadLetterError:
                raise
            except Exception as exc:
                raise DeadLetterReadError(_explain("read", self._where(name), exc)) from exc
            if stored is not None:
                return name, DeadLetter.from_json(stored.data)
        return None

    def mark_replayed(self, name: str, outcome: str, reason: str, at: datetime | None = None) -> DeadLetter:
        """Append ``{"at", "outcome", "reason"}`` to the record's replays and rewrite it (never deleted, so the trail
        stays); returns the updated record. Raises DeadLetterWriteError on any failure, ValueError on a bad
        outcome or a name that is not a dead letter under this store's prefix."""
        parts = parse_name(name, self.prefix)
        if parts is None:
            raise ValueError(f"{name!r} is not a dead-letter object name under {self.uri}")
        check_outcome(outcome)
        deadline = Deadline(self.budget_s, self.timeout_s, self.clock)

        def build(stored: _Stored | None) -> tuple[str, DeadLetter]:
            if stored is None:
                raise DeadLetterWriteError(f"no dead letter at {self._where(name)}: nothing to mark")
            return name, with_replay(self._parse(stored), outcome, reason, at or self.clock.now())

        try:
            with self._lock(parts.dag_id, parts.run_id):
                return self._update(self._get(name, deadline), build, deadline)[1]
        except DeadLetterWriteError:
            raise
        except Exception as exc:
            raise DeadLetterWriteError(_explain("mark the replay of", self._where(name), exc)) from exc
