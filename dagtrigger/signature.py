"""Webhook signatures: what a sender signs, and the strict check of it. Pure: no settings, no I/O.

Two schemes, both HMAC-SHA256 with a shared secret and a timestamp:

* ``dagtrigger-v2`` — ``X-Dagtrigger-Signature: t=<unix seconds>,v2=<64 hex>`` over the *whole request that chooses
  a run*: timestamp, method, path and query, the idempotency key and the body (see ``canonical``). Changing any of
  them invalidates the signature, so a captured request can only ever be replayed as itself (→ the same run → 409).
* ``standard-webhooks`` — the Standard Webhooks convention (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64>`` over ``id.timestamp.body``), so senders can use its libraries. It does not sign
  the URL, so the routing layer binds it differently (one secret per route, fixed DAG; see docs/webhooks.md).

Header grammar is strict (ASCII digits, exact hex/base64 lengths); anything else is a 401 with a reason, never a 500.
Several signatures may be sent, and several secrets held, during a rotation; comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .clock import SYSTEM_CLOCK
from .exceptions import BadEvent

HEADER = "X-Dagtrigger-Signature"
STANDARD_ID = "webhook-id"
STANDARD_TIMESTAMP = "webhook-timestamp"
STANDARD_SIGNATURE = "webhook-signature"
SCHEMES = ("dagtrigger-v2", "standard-webhooks")

_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() also accepts '１２３' and '²'
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BASE64_SHA256 = re.compile(r"[A-Za-z0-9+/]{43}=")
_STANDARD_ID = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_HEADER = 4096


@dataclass(frozen=True)
class SignedRequest:
    """What a signature must cover; ``path`` is the decoded request path, ``query`` the raw query string."""

    method: str
    path: str
    query: str
    idempotency_key: str
    body: bytes


def canonical(timestamp: int, request: SignedRequest) -> bytes:
    """The bytes a ``dagtrigger-v2`` signature is computed over (one field per line, the body last, verbatim)."""
    target = request.path + (f"?{request.query}" if request.query else "")
    head = f"dagtrigger-v2\n{timestamp}\n{request.method.upper()}\n{target}\n{request.idempotency_key}\n"
    return head.encode("utf-8") + request.body


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def sign(secret: str, request: SignedRequest, timestamp: int | None = None) -> str:
    """The ``X-Dagtrigger-Signature`` value for ``request`` (used by ``python -m dagtrigger send`` and tests)."""
    t = int(SYSTEM_CLOCK.now().timestamp()) if timestamp is None else timestamp
    return f"t={t},v2={_hmac_hex(secret, canonical(t, request))}"


def _standard_key(secret: str) -> bytes:
    """Standard Webhooks secrets are base64 of the key, usually prefixed ``whsec_``; decoded exactly as the
    reference library (``standardwebhooks``) decodes them, so a secret pasted from a sender's console works."""
    text = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(text + "==")
    except (binascii.Error, ValueError):
        return text.encode("utf-8")


STANDARD_MIN_KEY_BYTES = 16


def standard_key_problem(secret: str) -> str | None:
    """Why this Standard Webhooks secret is no usable key, or None: it must decode to at least 16 bytes (a secret
    with no base64 characters decodes to an empty key, and HMAC with an empty key is known to everyone)."""
    size = len(_standard_key(secret))
    if size < STANDARD_MIN_KEY_BYTES:
        return f"decodes to a {size}-byte key; a Standard Webhooks secret must decode to ≥ 16 bytes (whsec_ + base64)"
    return None


def _standard_digest(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    message = f"{message_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(_standard_key(secret), message, hashlib.sha256).digest()).decode("ascii")


def sign_standard(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``body`` (what the ``standardwebhooks`` libraries send)."""
    t = int(SYSTEM_CLOCK.now().timestamp()) if timestamp is None else timestamp
    return {
        STANDARD_ID: message_id,
        STANDARD_TIMESTAMP: str(t),
        STANDARD_SIGNATURE: f"v1,{_standard_digest(secret, message_id, t, body)}",
    }


def _fresh(timestamp_text: str, what: str, tolerance_s: float, now: float | None) -> int:
    if not _TIMESTAMP.fullmatch(timestamp_text):
        raise BadEvent(f"malformed {what}: the timestamp must be unix seconds in ASCII digits", 401)
    timestamp = int(timestamp_text)
    age = (SYSTEM_CLOCK.now().timestamp() if now is None else now) - timestamp
    if abs(age) > tolerance_s:
        raise BadEvent(f"{what} timestamp is {int(age)} s off, outside the {int(tolerance_s)} s tolerance", 401)
    return timestamp


def verify(
    secrets: Iterable[str], header: str | None, request: SignedRequest, tolerance_s: float, now: float | None = None
) -> str:
    """Check a ``dagtrigger-v2`` header; return the secret that verified it. BadEvent(401) with a reason otherwise."""
    if not header:
        raise BadEvent(f"missing {HEADER} header: this endpoint requires signed webhooks", 401)
    if len(header) > _MAX_HEADER or not header.isascii():
        raise BadEvent(f"malformed {HEADER} header: expected t=<unix seconds>,v2=<64 hex>", 401)
    timestamp_text, candidates, old = None, [], False
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and timestamp_text is None:
            timestamp_text = value
        elif key == "v2" and _HEX64.fullmatch(value):
            candidates.append(value)
        elif key == "v1":
            old = True
    if timestamp_text is None or not candidates:
        hint = " (v1 signatures covered only the body and are no longer accepted; see docs/webhooks.md)" if old else ""
        raise BadEvent(f"malformed {HEADER} header: expected t=<unix seconds>,v2=<64 hex>{hint}", 401)
    timestamp = _fresh(timestamp_text, HEADER, tolerance_s, now)
    message = canonical(timestamp, request)
    for secret in secrets:
        expected = _hmac_hex(secret, message)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return secret
    raise BadEvent(f"{HEADER} does not match this request (method, path, query, idempotency key and body)", 401)


def standard_headers(headers: Mapping[str, str]) -> tuple[str, str, str] | None:
    """The three Standard Webhooks headers if the request carries any of them (then all three are required)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    values = tuple(lowered.get(name) for name in (STANDARD_ID, STANDARD_TIMESTAMP, STANDARD_SIGNATURE))
    if not any(values):
        return None
    if not all(values):
        raise BadEvent("Standard Webhooks requests need webhook-id, webhook-timestamp and webhook-signature", 401)
    return values  # type: ignore[return-value]


def verify_standard(
    secrets: Iterable[str],
    values: tuple[str, str, str],
    body: bytes,
    tolerance_s: float,
    now: float | None = None,
) -> str:
    """Check Standard Webhooks headers; return the secret that verified them. BadEvent(401) otherwise."""
    message_id, timestamp_text, signature_list = values
    if not _STANDARD_ID.fullmatch(message_id) or len(signature_list) > _MAX_HEADER or not signature_list.isascii():
        raise BadEvent("malformed Standard Webhooks headers", 401)
    timestamp = _fresh(timestamp_text, STANDARD_TIMESTAMP, tolerance_s, now)
    candidates = [
        sig for version, _, sig in (item.partition(",") for item in signature_list.split()) if version == "v1"
    ]
    candidates = [sig for sig in candidates if _BASE64_SHA256.fullmatch(sig)]
    if not candidates:
        raise BadEvent("malformed webhook-signature: expected 'v1,<base64 HMAC-SHA256>'", 401)
    for secret in secrets:
        expected = _standard_digest(secret, message_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in candidates):
            return secret
    raise BadEvent("webhook-signature does not match this request (webhook-id, timestamp and body)", 401)
