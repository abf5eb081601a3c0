"""What Airflow, the dead letters and the batch members hold, read in bulk: a DAG's runs one page of 100 per call
for the interval, the dead-letter names one listing page per call, each batch run's members one listing per run.

Thread-safe: a sweep's workers share one ledger. Every call made is counted in ``Calls``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from ..airflow import AirflowClient, RunInfo
from ..batch.members import member_problem
from ..deadletter import DeadLetterStore
from ..deadletter.seal import NO_KEYS, SealKeys
from ..gcs import default_retry


@dataclass
class Calls:
    """HTTP requests to Airflow (every attempt, retries included) and to Cloud Storage made by this command."""

    airflow: int = 0
    storage: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_storage(self, n: int = 1) -> None:
        with self._lock:
            self.storage += n

    def add_airflow(self, n: int = 1) -> None:
        with self._lock:
            self.airflow += n

    def count_airflow(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """A requests response hook: one call, plus the attempts urllib3 retried before this answer."""
        retries = getattr(response.raw, "retries", None)
        self.add_airflow(1 + len(getattr(retries, "history", ()) or ()))

    def watch(self, client: AirflowClient) -> None:
        """Count every request ``client`` makes from now on (its session is this process's Airflow session)."""
        client.session.hooks.setdefault("response", []).append(self.count_airflow)


class Ledger:
    """The facts a sweep decides on. ``load_*`` read in bulk; the lookups are then in memory."""

    def __init__(self, client: AirflowClient, storage: Any, calls: Calls, seal: SealKeys = NO_KEYS) -> None:
        """``seal``: with keys, a dead letter or a batch member counts only when its seal verifies."""
        self.client = client
        self.seal = seal
        self.storage = storage
        self.calls = calls
        self.runs: dict[str, dict[str, RunInfo]] = {}
        self.dead_letters: dict[tuple[str, str], str] = {}
        self.refused: dict[str, str] = {}  # gs:// URI of a dead letter or member → why it does not count
        self._store: DeadLetterStore | None = None
        self._verified: dict[str, bool] = {}  # dead-letter name → its seal verified
        self._members: dict[tuple[str, str], frozenset[str]] = {}
        self._lock = threading.Lock()

    def load_runs(self, dag_ids: Iterable[str], since: datetime) -> None:
        """Every run of these DAGs created or changed since ``since`` (a run of an object created at or after
        ``since`` cannot be older), page by page."""
        for dag_id in sorted(set(dag_ids)):
            self.runs[dag_id] = {run.run_id: run for run in self.client.list_runs(dag_id, since)}

    def load_dead_letters(self, store: DeadLetterStore, since: datetime) -> None:
        self._store = store
        for name, parts in store.keys(since, on_page=self.calls.add_storage):
            self.dead_letters[(parts.dag_id, parts.run_id)] = name

    def run(self, dag_id: str, run_id: str) -> RunInfo | None:
        return self.runs.get(dag_id, {}).get(run_id)

    def dead_letter(self, dag_id: str, run_id: str) -> str | None:
        """The dead letter that accounts for this run, if any. With seal keys each one is read once, when a
        verdict first needs it (one GET per dead letter met, not per listed name): a record that does not verify
        counts as none, so the sweep sends its upload again (same run id: no second run)."""
        name = self.dead_letters.get((dag_id, run_id))
        if name is None or self._store is None or not self._store.seal:
            return name
        with self._lock:
            known = self._verified.get(name)
        if known is None:
            self.calls.add_storage()
            problem = self._store.accounts_for(name, dag_id, run_id)
            known = problem is None
            with self._lock:
                self._verified[name] = known
                if problem is not None:
                    self.refused[f"gs://{self._store.bucket_name}/{name}"] = problem
        return name if known else None

    def members(self, bucket: str, prefix: str) -> frozenset[str]:
        """The member objects of one batch run (one listing, then remembered)."""
        key = (bucket, prefix)
        with self._lock:
            known = self._members.get(key)
        if known is not None:
            return known
        blobs = self.storage.list_blobs(
            bucket, prefix=prefix, fields="items(name),nextPageToken", retry=default_retry()
        )
        names: set[str] = set()
        for page in blobs.pages:
            self.calls.add_storage()
            names.update(blob.name for blob in page)
        if self.seal:  # a member planted in the bucket would hide a lost upload: each one is read and verified
            names = {name for name in names if self._member_verifies(bucket, name)}
        found = frozenset(names)
        with self._lock:
            self._members[key] = found
        return found

    def _member_verifies(self, bucket: str, name: str) -> bool:
        self.calls.add_storage()
        try:
            data = self.storage.bucket(bucket).blob(name).download_as_bytes(retry=default_retry())
        except Exception as exc:  # gone since the listing, or unreadable: it proves nothing, so the upload is sent
            problem: str | None = f"cannot be read ({type(exc).__name__})"
        else:
            problem = member_problem(self.seal, bucket, name, data)
        if problem is not None:
            with self._lock:
                self.refused[f"gs://{bucket}/{name}"] = problem
        return problem is None

    def forget_members(self, bucket: str, prefix: str) -> None:
        with self._lock:
            self._members.pop((bucket, prefix), None)
