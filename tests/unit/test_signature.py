from __future__ import annotations

import pytest

from dagtrigger.exceptions import BadEvent
from dagtrigger.signature import sign, verify

SECRET = "0123456789abcdef-webhook-secret"
BODY = b'{"order": 42}'


def test_a_fresh_signature_verifies() -> None:
    verify(SECRET, sign(SECRET, BODY), BODY, 300)


def test_rotation_accepts_any_listed_signature() -> None:
    old = sign("old-secret-old-secret", BODY, 1000).split(",")[1]
    header = f"{sign(SECRET, BODY, 1000)},{old}"
    verify(SECRET, header, BODY, 300, now=1000)


@pytest.mark.parametrize(
    ("header", "now", "fragment"),
    [
        (None, 1000, "missing"),
        ("v1=abc", 1000, "malformed"),
        ("t=1000", 1000, "malformed"),
        (sign(SECRET, BODY, 1000), 1000 + 301, "outside the 300 s tolerance"),
        (sign(SECRET, BODY, 1000), 1000 - 301, "outside the 300 s tolerance"),
        (sign("another-secret-1234", BODY, 1000), 1000, "does not match"),
        (sign(SECRET, BODY + b" ", 1000), 1000, "does not match"),
    ],
)
def test_bad_signatures_are_401_with_a_reason(header: str | None, now: float, fragment: str) -> None:
    with pytest.raises(BadEvent) as info:
        verify(SECRET, header, BODY, 300, now=now)
    assert info.value.status == 401 and fragment in str(info.value)
    assert SECRET not in str(info.value)
