"""Cloud Storage, shared by manifests, batch members and dead letters: ``gs://bucket/prefix`` locations validated
one way, and one storage client per process.

google-cloud-storage is imported on first use (~0.35 s), so routes without manifests, batches or dead letters do not
pay for it at cold start. The client honours ``STORAGE_EMULATOR_HOST`` (tests).
"""

from __future__ import annotations

import re
import threading
from typing import Any

MAX_PREFIX_BYTES = 500  # object names are ≤ 1,024 bytes: room for what callers add under the prefix
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_BAD_PREFIX = re.compile(r"[\x00-\x1f\x7f*?\[\]#]")
_client: Any = None
_lock = threading.Lock()


def parse_location(uri: str) -> tuple[str, str]:
    """``gs://bucket/prefix`` → (bucket, prefix without slashes at either end; "" for the bucket root).

    Raises ValueError with the problem alone; callers wrap it in a ConfigError naming their setting or field."""
    value = uri.strip()
    if not value:
        raise ValueError("is empty: expected gs://bucket/prefix")
    if not value.startswith("gs://"):
        raise ValueError(f"{value[:100]!r} must start with gs://")
    bucket, _, prefix = value[len("gs://") :].partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or any(len(part) > 63 for part in bucket.split(".")):
        raise ValueError(f"{bucket[:100]!r} is not a bucket name (3-63 lowercase letters, digits, '-', '_' or '.')")
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
