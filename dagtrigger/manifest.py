"""Read a route's manifest — a small JSON object in Cloud Storage — into the conf.

google-cloud-storage is imported on first use only, so routes without manifests (and cold starts) pay nothing.
"""

from __future__ import annotations

from typing import Any

from .exceptions import BadEvent, ManifestError
from .gcs import storage_client
from .strict_json import parse_json

__all__ = ["ManifestError", "read_manifest"]


def read_manifest(bucket: str, name: str, max_bytes: int) -> dict[str, Any]:
    """The manifest's JSON object; ManifestError when missing, too large, not JSON, or not readable now."""
    from google.api_core import exceptions as gexc

    where = f"gs://{bucket}/{name}"
    try:
        blob = storage_client().bucket(bucket).get_blob(name)
        if blob is None:
            raise ManifestError(f"manifest {where} does not exist")
        if blob.size is not None and blob.size > max_bytes:
            raise ManifestError(f"manifest {where} is {blob.size} bytes, over max_bytes={max_bytes}")
        raw = blob.download_as_bytes(end=max_bytes)
    except ManifestError:
        raise
    except (gexc.NotFound, gexc.Forbidden) as exc:
        raise ManifestError(f"manifest {where} cannot be read: {type(exc).__name__} ({exc.code})") from None
    except gexc.GoogleAPIError as exc:
        raise ManifestError(f"manifest {where} could not be read now: {type(exc).__name__}", transient=True) from None
    except Exception as exc:
        raise ManifestError(f"manifest {where} could not be read now: {type(exc).__name__}", transient=True) from None
    if len(raw) > max_bytes:
        raise ManifestError(f"manifest {where} is over max_bytes={max_bytes}")
    try:  # strict and depth-limited: 5,000 nested '[' must be this manifest's failure, not a RecursionError (500)
        document = parse_json(raw, f"manifest {where}")
    except BadEvent as exc:
        raise ManifestError(str(exc)) from None
    if not isinstance(document, dict):
        raise ManifestError(f"manifest {where} must be a JSON object, got {type(document).__name__}")
    return document
