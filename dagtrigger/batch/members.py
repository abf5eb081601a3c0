"""The members of batch runs: one JSON object per event in Cloud Storage, written before the event is acknowledged.

Writes are idempotent (a redelivery rewrites the object of the same name), so they are retried like any idempotent
request; ``MemberWriteError`` means the event must not be acknowledged. google-cloud-storage is imported on first
use, as in deadletter.py, so routes without batches pay nothing at cold start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..clock import SYSTEM_CLOCK, Clock
from ..deadletter.seal import NO_KEYS, SealKeys
from ..exceptions import DagtriggerError
from ..gcs import Deadline, client_and_retry, explain


class MemberWriteError(DagtriggerError, RuntimeError):
    """A member could not be recorded: answer non-2xx so the platform redelivers the event."""

    key = "batch-member-write"
    transient = True


class MembersStore:
    """One storage client per process, shared by concurrent requests (built on first use under a lock)."""

    def __init__(
        self,
        client: Any = None,
        *,
        budget_s: float = 20.0,
        timeout_s: float = 10.0,
        clock: Clock = SYSTEM_CLOCK,
        seal: SealKeys = NO_KEYS,
    ) -> None:
        """``seal``: the dead-letter seal keys; with them every member is sealed to its object (deadletter/seal.py),
        so a member planted in the bucket can be told apart by the DAG and by ``sweep``."""
        self.clock = clock
        self.seal = seal
        self.budget_s = budget_s
        self.timeout_s = timeout_s
        self._client = client

    def _storage(self) -> tuple[Any, Any]:
        return client_and_retry(self._client)

    def write(self, bucket: str, name: str, record: Mapping[str, Any]) -> str:
        """Upload ``record`` as ``gs://bucket/name`` within the time budget; returns that URI.

        Raises MemberWriteError on any failure (after google-cloud-storage's retries: an unconditional upload is
        retried here on purpose, since rewriting a member with the same content is harmless)."""
        uri = f"gs://{bucket}/{name}"
        data = json.dumps(self.seal.seal_member(bucket, name, record), ensure_ascii=False, sort_keys=True).encode()
        deadline = Deadline(self.budget_s, self.timeout_s, self.clock)
        try:
            client, retry = self._storage()
            blob = client.bucket(bucket).blob(name)
            blob.upload_from_string(data, content_type="application/json; charset=utf-8", **deadline.options(retry))
        except Exception as exc:
            raise MemberWriteError(explain("record the member", uri, exc, limit=300)) from exc
        return uri

    def read_all(self, bucket: str, prefix: str) -> list[dict[str, Any]]:
        """Every member record under ``prefix`` (what a batch run's task reads), in name order; for operators and
        tests. Raises google-cloud-storage's errors unchanged."""
        client, retry = self._storage()
        records = []
        for blob in client.list_blobs(bucket, prefix=prefix, timeout=self.timeout_s, retry=retry):
            if blob.name.endswith(".json"):
                records.append(json.loads(blob.download_as_bytes(timeout=self.timeout_s, retry=retry)))
        return records


def member_problem(seal: SealKeys, bucket: str, name: str, data: bytes) -> str | None:
    """Why the member stored as ``gs://bucket/name`` (its bytes) does not count under these keys, or None when it
    does (``sweep`` and ``why`` ask this only when keys are set)."""
    try:
        record = json.loads(data)
    except ValueError as exc:
        return f"not a member record ({exc})"
    if not isinstance(record, dict):
        return "not a member record (not a JSON object)"
    return seal.member_problem(bucket, name, record)
