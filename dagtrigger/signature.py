"""Optional HMAC signatures for webhooks: ``X-Dagtrigger-Signature: t=<unix seconds>,v1=<hex sha256>``.

The signed bytes are ``f"{t}."`` followed by the raw body, so a captured request cannot be replayed outside the
timestamp tolerance, and replays inside it are absorbed by the run id (same body → same run → 409).
Several ``v1=`` values may be sent during a secret rotation; comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from .exceptions import BadEvent

HEADER = "X-Dagtrigger-Signature"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender puts on ``body`` (also used by ``python -m dagtrigger send`` and the tests)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, tolerance_s: float, now: float | None = None) -> None:
    """Raise BadEvent(401) with a reason (never the expected value) unless the signature is valid and fresh."""
    if not header:
        raise BadEvent(f"missing {HEADER} header: this endpoint requires signed webhooks", 401)
    timestamp, candidates = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadEvent(f"malformed {HEADER} header: expected t=<unix seconds>,v1=<hex>", 401)
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise BadEvent(f"{HEADER} timestamp is {int(age)} s off, outside the {int(tolerance_s)} s tolerance", 401)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise BadEvent(f"{HEADER} does not match the body", 401)
