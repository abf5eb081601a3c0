"""Dead-letter seals: an HMAC-SHA256 over what replay takes from a record, with a key only the function and the
replaying operator hold (``DEAD_LETTER_SEAL_SECRET``, from Secret Manager).

Anyone who can write the dead-letter bucket can write a record. A webhook record carries its sender's signature and a
Cloud Storage record names an object Cloud Storage can confirm, but nothing outside a record can confirm a Pub/Sub
message (Pub/Sub keeps no acknowledged messages): the seal is the only proof that the function wrote it. Replay
refuses a record whose seal does not verify (see docs/security.md, "What dead letters prove").

The sealed bytes are ``DOMAIN`` followed by canonical JSON (sorted keys, no spaces, ASCII escapes, JSON types only) of
the fields in ``SEALED_FIELDS``: JSON has one reading, so two records that differ in a sealed field never share an
encoding. What is not sealed is what changes after writing or only informs a human: ``reason``, ``status``,
``first_seen``, ``last_seen``, ``replays`` (appended by replay), the event's id, type and time (replay reads the event
again from ``raw``), and keys from newer versions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..exceptions import BadDeadLetter, ConfigError
from .record import DeadLetter

VERSION = "v1"
DOMAIN = b"dagtrigger dead-letter seal v1\n"
MEMBER_DOMAIN = b"dagtrigger batch member seal v1\n"
SEALED_FIELDS = ("transport", "raw", "attempts", "route", "dag_id", "run_id", "recorded_at")
MIN_KEY_BYTES = 16
CURRENT = "DEAD_LETTER_SEAL_SECRET"
PREVIOUS = "DEAD_LETTER_SEAL_SECRET_PREVIOUS"
_MAX_DEPTH = 100  # records are parsed with depth ≤ 64 (strict_json); new ones come from parsed requests
_KEY_ID_LABEL = b"dagtrigger dead-letter seal key id"


def canonical(value: Any, depth: int = 0) -> str:
    """``value`` as canonical JSON; ValueError for anything JSON does not hold as itself (non-string keys, which
    ``json.dumps`` would turn into strings, NaN, infinities, tuples, bytes), so the encoding stays one-to-one."""
    _check_json(value, depth)
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _check_json(value: Any, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a number that is not finite")
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"a key of type {type(key).__name__}")
            _check_json(item, depth + 1)
        return
    raise ValueError(f"a value of type {type(value).__name__}")


def encoding(record: DeadLetter) -> bytes:
    """The bytes a seal covers: the domain, then the sealed fields as canonical JSON. ValueError when a sealed field
    holds something JSON cannot (never the case for records read from storage or built from a request)."""
    fields = {name: getattr(record, name) for name in SEALED_FIELDS}
    fields["raw"] = dict(record.raw)
    return DOMAIN + canonical(fields).encode("ascii")


def decode_key(text: str, name: str = CURRENT) -> bytes:
    """A key as stored in Secret Manager: base64 (``openssl rand -base64 32``), surrounding whitespace ignored;
    ConfigError naming the variable when it is not base64 or decodes to fewer than ``MIN_KEY_BYTES`` bytes."""
    how = f"(generate: openssl rand -base64 32; map it from Secret Manager: --set-secrets={name}=dead-letter-seal:1)"
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name}: a seal key must be base64 {how}") from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"{name}: decodes to a {len(key)}-byte key; a seal key must decode to ≥ 16 bytes {how}")
    return key


def _key_id(key: bytes) -> str:
    """Which key sealed a record (8 hex digits of an HMAC under that key: it reveals nothing about the key)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True, repr=False)
class SealKeys:
    """The keys replay accepts; the first one seals. Empty: records are written unsealed and nothing is verified."""

    keys: tuple[bytes, ...] = ()

    def __repr__(self) -> str:
        return f"SealKeys({', '.join(_key_id(k) for k in self.keys)})"

    def __bool__(self) -> bool:
        return bool(self.keys)

    @classmethod
    def parse(cls, current: str, previous: str = "") -> SealKeys:
        """``DEAD_LETTER_SEAL_SECRET`` and ``DEAD_LETTER_SEAL_SECRET_PREVIOUS`` (one key, or several separated by
        commas: keys still accepted while records they sealed may be replayed); ConfigError on a bad key."""
        olds = [part for part in previous.split(",") if part.strip()]
        if olds and not current.strip():
            raise ConfigError(f"{PREVIOUS} is set without {CURRENT} (the key that seals new records)")
        if not current.strip():
            return cls()
        return cls((decode_key(current, CURRENT), *(decode_key(old, PREVIOUS) for old in olds)))

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> SealKeys:
        """Keys already validated by the settings (``Settings.dead_letter_seal_secrets``), current first."""
        return cls(tuple(decode_key(text) for text in texts))

    def seal(self, record: DeadLetter) -> DeadLetter:
        """``record`` with its seal (``v1.<key id>.<hex HMAC>``) under the first key; unchanged without keys."""
        if not self.keys:
            return record
        key = self.keys[0]
        return replace(record, seal=f"{VERSION}.{_key_id(key)}.{_mac(key, record)}")

    def problem(self, record: DeadLetter) -> str | None:
        """Why the record's seal does not verify under these keys, or None when it does."""
        return self._problem(record.seal, lambda key: _mac(key, record), "record")

    def _problem(self, seal: object, mac: Callable[[bytes], str], what: str) -> str | None:
        if not seal or not isinstance(seal, str):
            return f"the {what} has no seal"
        parts = seal.split(".")
        if len(parts) != 3 or parts[0] != VERSION:
            return f"the seal is not a {VERSION} seal"
        key = next((k for k in self.keys if hmac.compare_digest(_key_id(k), parts[1])), None)
        if key is None:
            return (
                f"it was not sealed with a key this replay holds (key id {parts[1][:8]!r}): replay or sweep with "
                f"the key that sealed it as {CURRENT} or {PREVIOUS}, or the {what} was planted"
            )
        try:
            expected = mac(key)
        except ValueError as exc:
            return f"a sealed field cannot be encoded ({exc})"
        if not hmac.compare_digest(expected, parts[2]):
            return f"the seal does not match: a sealed field changed since the function wrote the {what}"
        return None

    def seal_member(self, bucket: str, name: str, member: Mapping[str, Any]) -> dict[str, Any]:
        """A batch member record with its seal, bound to the object it is written as (``gs://bucket/name``: a copy
        in another batch's folder does not verify); unchanged without keys."""
        unsealed = {k: v for k, v in member.items() if k != "seal"}
        if not self.keys:
            return unsealed
        key = self.keys[0]
        return {**unsealed, "seal": f"{VERSION}.{_key_id(key)}.{_member_mac(key, bucket, name, unsealed)}"}

    def member_problem(self, bucket: str, name: str, member: Mapping[str, Any]) -> str | None:
        """Why a member record read from ``gs://bucket/name`` does not verify, or None when it does."""
        unsealed = {k: v for k, v in member.items() if k != "seal"}
        return self._problem(member.get("seal"), lambda key: _member_mac(key, bucket, name, unsealed), "member")

    def verified(self, record: DeadLetter) -> bool:
        """True when the record carries a seal these keys verify; False when there are no keys or no seal (the
        caller decides what an unsealed record may do); raises BadDeadLetter for a seal that does not verify."""
        if not self.keys or not record.seal:
            return False
        problem = self.problem(record)
        if problem is not None:
            raise BadDeadLetter(f"refused: {problem}")
        return True


def _mac(key: bytes, record: DeadLetter) -> str:
    return hmac.new(key, encoding(record), hashlib.sha256).hexdigest()


def member_encoding(bucket: str, name: str, member: Mapping[str, Any]) -> bytes:
    """What a member's seal covers: its own domain (a member seal never verifies as a dead letter's, or back), the
    object it is stored as, and every field of the record but the seal, as canonical JSON."""
    return MEMBER_DOMAIN + canonical({"object": f"gs://{bucket}/{name}", "member": dict(member)}).encode("ascii")


def _member_mac(key: bytes, bucket: str, name: str, member: Mapping[str, Any]) -> str:
    return hmac.new(key, member_encoding(bucket, name, member), hashlib.sha256).hexdigest()


NO_KEYS = SealKeys()


def unsealed_refusal(keys: SealKeys, other_proof: bool, accept_unsealed: bool) -> str | None:
    """Why an unsealed record (or one this replay cannot verify for lack of keys) is refused, or None when it may go
    on. With keys, every unsealed record is refused; without, only those with no other proof (a Pub/Sub message:
    neither a webhook signature nor an object Cloud Storage confirms). ``--accept-unsealed`` lets them through."""
    if accept_unsealed:
        return None
    if keys:
        return (
            f"refused: the record has no seal (written before {CURRENT} was set, or planted); after checking it, "
            "replay it with --accept-unsealed"
        )
    if other_proof:
        return None
    return (
        f"refused: a Pub/Sub message record proves nothing without a seal and replay holds no {CURRENT} (set the "
        "function's key, or after checking the record replay it with --accept-unsealed)"
    )
