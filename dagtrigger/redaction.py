"""One redaction for everything that leaves the process: log lines, HTTP answers, dead letters and ``check`` output.

Every ``Secret`` registers its value here when it is created (settings, route secrets), so a configured secret is
masked wherever it would appear; patterns catch credentials we never held (a token a proxy echoes, a password in
a JSON error page). Keep it the only masking code in the package: a second copy drifts.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Collection
from dataclasses import dataclass

MASK = "***"
_MIN_SECRET_CHARS = 4


@dataclass(frozen=True)
class _Pattern:
    """A credential we never held, found by ``pattern``; ``needles``: lower-case strings one of which every match
    holds, so ASCII text without any of them is passed over by ``in`` instead of a regular-expression scan (seven
    scans cost ~0.2 ms on a 400-character log line, written for every event)."""

    pattern: re.Pattern[str]
    replacement: str
    needles: tuple[str, ...]


_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        re.compile(r"(?i)\b(bearer|basic|negotiate|digest)(\s+|%20)[^\s'\",;]+"),
        rf"\1 {MASK}",
        ("bearer", "basic", "negotiate", "digest"),
    ),
    _Pattern(
        re.compile(
            r"(?i)([\"']?)(password|passwd|access_token|id_token|refresh_token|client_secret|secret|token)\1"
            r"(\s*[:=]\s*)([\"']?)[^\"'&\s,;}]+\4"
        ),
        rf"\1\2\1\3\4{MASK}\4",
        ("passw", "token", "secret"),
    ),
    _Pattern(
        re.compile(r"(?i)\b(key|sig|signature|x-goog-signature|x-goog-credential)=[^&\s'\",]+"),
        rf"\1={MASK}",
        ("key=", "sig=", "signature=", "credential="),
    ),
    _Pattern(re.compile(r"\bya29\.[A-Za-z0-9._-]+"), f"ya29.{MASK}", ("ya29.",)),
    _Pattern(re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), f"eyJ{MASK}", ("eyj",)),
    _Pattern(re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@"), rf"\1{MASK}@", ("://",)),
    _Pattern(re.compile(r"(?i)\bwhsec_[A-Za-z0-9+/=]+"), f"whsec_{MASK}", ("whsec_",)),
)
_known: frozenset[str] = frozenset()
_longest_first: tuple[str, ...] = ()  # _known, longest first (a secret inside another is masked after it)
_lock = threading.Lock()


def _forms(value: str) -> set[str]:
    """The value and the forms it takes on the way out: JSON-escaped (logs and answers are redacted after encoding,
    so ``pa"ss`` appears as ``pa\\"ss``), with and without ``ensure_ascii``."""
    return {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}


def remember(value: str) -> None:
    """Mask this exact value, in every form it is written out, from now on (long enough values only: masking 'a'
    would shred every message)."""
    global _known, _longest_first
    if len(value) >= _MIN_SECRET_CHARS:
        with _lock:
            _known = _known | _forms(value)
            _longest_first = tuple(sorted(_known, key=len, reverse=True))


def basic_credentials(username: str, password: str) -> str:
    """The base64 of ``user:password`` as a basic ``Authorization`` header carries it: masked like the password,
    since an echo of the header without its ``Basic`` prefix escapes the pattern."""
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def redact(text: str, *, public: Collection[str] = (), patterns: bool = True) -> str:
    """``text`` with every remembered secret replaced by ``***``, and with ``patterns`` the credentials we never held.

    ``public`` names values that are identifiers, not secrets (a user name), even where a secret has the same value
    (a local ``viewer``/``viewer`` login): they stay readable. Our own advice (``check``'s fix texts) is redacted
    without ``patterns``: a sentence such as "wrong user or password: check AIRFLOW_USERNAME" is no credential, and
    the outside values filled into it are redacted with them before."""
    for secret in _longest_first:
        if secret in text and secret not in public:
            text = text.replace(secret, MASK)
    if patterns:
        # In ASCII text, (?i) matches a needle's letters only as upper or lower case, so text.lower() finds every
        # needle a match needs; elsewhere (ſ and K match s and k) every pattern scans. A replacement never forms a
        # needle that was not there (the mask is '*'), so a needle missing now stays missing.
        lowered = text.lower() if text.isascii() else None
        for rule in _PATTERNS:
            if lowered is None or any(needle in lowered for needle in rule.needles):
                text = rule.pattern.sub(rule.replacement, text)
    return text


class Secret(str):
    """A string that never shows itself in repr() and is masked by ``redact`` wherever its value appears."""

    def __new__(cls, value: str = "") -> Secret:
        remember(value)
        return super().__new__(cls, value)

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


def printable(text: str) -> str:
    """``text`` safe for a terminal or a one-line log: control characters (ESC, CR, BEL, C1, line separators) are shown
    as escapes, so stored or sent text cannot move the cursor, rewrite a line or forge another log line."""
    return "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
