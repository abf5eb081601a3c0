"""Cloud Storage, shared by manifests, batch members and dead letters: ``gs://bucket/prefix`` locations validated
one way, one storage client per process, one time budget per operation and one explanation of a failure.

google-cloud-storage is imported on first use (~0.35 s), so routes without manifests, batches or dead letters do not
pay for it at cold start. The client honours ``STORAGE_EMULATOR_HOST`` (tests).
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Mapping
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .exceptions import ConfigError
from .redaction import redact

MAX_PREFIX_BYTES = 500  # object names are ≤ 1,024 bytes: room for what callers add under the prefix
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_BAD_PREFIX = re.compile(r"[\x00-\x1f\x7f*?\[\]#]")
# What the operator does about a refusal, by HTTP status; a caller adds or overrides entries for its own objects.
HINTS: Mapping[int, str] = {
    401: "; the storage credentials were refused",
    403: "; grant the function's service account roles/storage.objectUser on the bucket",
}
# Waits between tries of a write that lost a race to another writer of one object (Deadline.wait_after_conflict).
CONFLICT_WAIT_FIRST_S = 0.02
CONFLICT_WAIT_MAX_S = 1.0
# google-cloud-storage 3.x fires a background GET of the bucket on a client's first object call per bucket, for
# OpenTelemetry span attributes. It needs storage.buckets.get, which object-only roles lack, so every instance would
# write a denied call into Cloud Audit Logs (googleapis/google-cloud-python#17650). The library's own switch, set at
# import (start-up, one thread: no putenv while threads read the environment) unless the operator set it.
BUCKET_PROBE_SWITCH = "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA"
os.environ.setdefault(BUCKET_PROBE_SWITCH, "true")
_client: Any = None
_lock = threading.Lock()


def bucket_problem(name: str) -> str | None:
    """Why ``name`` is not a Cloud Storage bucket name, or None: the one bucket rule for settings, routes and events."""
    if not _BUCKET.fullmatch(name) or ".." in name or any(len(part) > 63 for part in name.split(".")):
        return f"{name[:100]!r} is not a bucket name (3-63 lowercase letters, digits, '-', '_' or '.')"
    return None


def parse_setting(variable: str, uri: str, example: str) -> tuple[str, str]:
    """``parse_location`` for a setting: ConfigError naming the variable, with a good example."""
    try:
        return parse_location(uri)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc} (example: {variable}={example})") from None


def parse_location(uri: str) -> tuple[str, str]:
    """``gs://bucket/prefix`` → (bucket, prefix without slashes at either end; "" for the bucket root).

    Raises ValueError with the problem alone; callers wrap it in a ConfigError naming their setting or field."""
    value = uri.strip()
    if not value:
        raise ValueError("is empty: expected gs://bucket/prefix")
    if not value.startswith("gs://"):
        raise ValueError(f"{value[:100]!r} must start with gs://")
    bucket, _, prefix = value[len("gs://") :].partition("/")
    problem = bucket_problem(bucket)
    if problem:
        raise ValueError(problem)
    prefix = prefix.strip("/")
    if prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")):
        raise ValueError("the prefix must not contain empty, '.' or '..' segments")
    if _BAD_PREFIX.search(prefix):
        raise ValueError("the prefix must not contain control characters, wildcards or '#'")
    if len(prefix.encode("utf-8")) > MAX_PREFIX_BYTES:
        raise ValueError(f"the prefix is over {MAX_PREFIX_BYTES} bytes")
    return bucket, prefix


def location_uri(bucket: str, prefix: str) -> str:
    """The inverse of ``parse_location``."""
    return f"gs://{bucket}/{prefix}" if prefix else f"gs://{bucket}"


def storage_client() -> Any:
    """The process's ``google.cloud.storage.Client``, built on first use under a lock; thread-safe to share."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                from google.cloud import storage

                _client = storage.Client()
    return _client


def default_retry() -> Any:
    """google-cloud-storage's retry policy for idempotent calls (callers bound it with ``with_timeout``)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY


def client_and_retry(client: Any = None) -> tuple[Any, Any]:
    """``client`` (a test's) or the process's, with the retry policy: google-cloud-storage is imported here, on
    first use, never at start-up."""
    return (client if client is not None else storage_client()), default_retry()


class Deadline:
    """One time budget for a whole operation (reads, uploads and their retries), so it ends in time; read on the
    pipeline's clock."""

    def __init__(self, budget_s: float, timeout_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.started = clock.monotonic()
        self.end = self.started + budget_s
        self.timeout_s = timeout_s
        self._random = random.Random()

    def spent(self) -> float:
        return self.clock.monotonic() - self.started

    def left(self) -> float:
        return self.end - self.clock.monotonic()

    def wait_after_conflict(self, lost: int) -> bool:
        """Before trying again a write that lost a race (412) ``lost`` times: wait a random time up to 20 ms × 2^lost
        (at most 1 s; full jitter, so writers that collided spread out) on the clock and say True, or say False at
        once when the wait would not leave the budget room for another try."""
        wait = self._random.uniform(0.0, min(CONFLICT_WAIT_MAX_S, CONFLICT_WAIT_FIRST_S * 2 ** min(lost, 16)))
        if self.left() - wait < self.timeout_s / 10:
            return False
        self.clock.sleep(wait)
        return True

    def options(self, retry: Any) -> dict[str, Any]:
        """``timeout`` and ``retry`` keyword arguments for one google-cloud-storage call; TimeoutError when spent."""
        left = self.left()
        if left <= 0:
            raise TimeoutError("the Cloud Storage time budget is spent")
        return {"timeout": min(self.timeout_s, max(left, 0.5)), "retry": retry.with_timeout(left)}


def explain(action: str, where: str, exc: BaseException, hints: Mapping[int, str] = HINTS, limit: int = 600) -> str:
    """One line for a failed storage call: what failed, the redacted detail, and what to do about it."""
    code = getattr(exc, "code", None)
    detail = " ".join(redact(str(exc)).split())[:limit]
    hint = hints.get(code, "") if isinstance(code, int) else ""
    if type(exc).__module__.startswith("google.auth"):
        hint = "; no usable Google credentials for Cloud Storage"
    return f"could not {action} {where}: {type(exc).__name__}: {detail or '(no detail)'}{hint}"
