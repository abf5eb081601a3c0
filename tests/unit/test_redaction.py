"""redaction.redact passes over the patterns whose needles a text lacks, and masks exactly what scanning with every
pattern masks (kept here as the oracle)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagtrigger import redaction
from dagtrigger.redaction import redact

# A log line as the function writes one per event (pipeline._log_result through logs.JsonFormatter).
EVENT_LINE = json.dumps(
    {
        "severity": "INFO",
        "message": "triggered dagtrigger_example run gcs-landing-incoming-2026-12-06-orders-000001-csv-17334 (200)",
        "event_id": "9876543210123",
        "event_type": "google.cloud.storage.object.v1.finalized",
        "dag_id": "dagtrigger_example",
        "run_id": "gcs-landing-incoming-2026-12-06-orders-000001-csv-17334",
        "outcome": "done",
        "status": 200,
        "route": "default",
    }
)


def _oracle(text: str) -> str:
    """Every pattern scans, as before the needles."""
    for rule in redaction._PATTERNS:
        text = rule.pattern.sub(rule.replacement, text)
    return text


class _CountingPattern:
    def __init__(self, pattern: re.Pattern[str], scans: list[str]) -> None:
        self.pattern, self.scans = pattern, scans

    def sub(self, replacement: str, text: str) -> str:
        self.scans.append(self.pattern.pattern)
        return self.pattern.sub(replacement, text)


def test_an_event_log_line_without_credential_words_is_not_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    scans: list[str] = []
    counted = tuple(replace(r, pattern=_CountingPattern(r.pattern, scans)) for r in redaction._PATTERNS)
    monkeypatch.setattr(redaction, "_PATTERNS", counted)
    assert redact(EVENT_LINE) == EVENT_LINE
    assert scans == []
    assert redact(EVENT_LINE.replace("done", "Bearer abc.def")) != EVENT_LINE  # a needle: that pattern scans
    assert len(scans) == 1


@pytest.mark.parametrize(
    "text",
    [
        '{"detail": "Authorization: Bearer abc.def"}',
        "password=hunter22&x=1",
        '{"Client_Secret": "s3cr3t"}',
        "https://user:pw@example.com/x",
        "GET /o?X-Goog-Signature=abcdef&X-Goog-Credential=me",
        "token ya29.a0AfH6SM and eyJhbGciOi.eyJzdWIiOi.sig",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "ſecret=abcd",  # long s: (?i) matches it as s, str.lower() does not: non-ASCII text scans with every pattern
        "\u212aey=abcd",  # Kelvin sign, matched as k
        "İd_token: abcd",
    ],
)
def test_credentials_are_masked_as_every_pattern_masks_them(text: str) -> None:
    assert redact(text) == _oracle(text) != text


WORDS = (
    *("bearer", "Basic", "password", "passwd", "TOKEN", "id_token", "secret", "key", "sig", "signature", "x-goog-"),
    *("credential", "ya29.", "eyJabcd", ".", "://", "@", "whsec_", "=", ":", " ", "%20", '"', "'", "&", ","),
    *("abcd", "XYZ1", "/", "ſ", "\u212a", "é", "\u2028"),
)
words = st.sampled_from(WORDS)


@settings(max_examples=800, deadline=None)
@given(parts=st.lists(words, max_size=12))
def test_redact_agrees_with_scanning_every_pattern(parts: list[str]) -> None:
    text = "".join(parts)
    assert redact(text) == _oracle(text)
