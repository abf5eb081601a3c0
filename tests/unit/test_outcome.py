from __future__ import annotations

from pathlib import Path

import pytest

from dagtrigger.outcome import Outcome, OutcomeKind, classify, combine


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, OutcomeKind.DONE),
        (201, OutcomeKind.DONE),
        (409, OutcomeKind.DUPLICATE),
        (400, OutcomeKind.FAILED),
        (404, OutcomeKind.FAILED),
        (405, OutcomeKind.FAILED),
        (422, OutcomeKind.FAILED),
        (418, OutcomeKind.FAILED),
        (401, OutcomeKind.RETRY),
        (403, OutcomeKind.RETRY),
        (408, OutcomeKind.RETRY),
        (429, OutcomeKind.RETRY),
        (500, OutcomeKind.RETRY),
        (503, OutcomeKind.RETRY),
        (302, OutcomeKind.FAILED),  # never followed with credentials, and retrying cannot help
    ],
)
def test_status_table(status: int, kind: OutcomeKind) -> None:
    outcome = classify(status)
    assert outcome.kind is kind
    assert outcome.status == status
    assert outcome.reason


def test_auth_failures_name_the_key_whose_doc_row_has_the_fix() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    for status in (401, 403):
        reason = classify(status).reason
        key = reason.rpartition("[")[2].rstrip("]")
        assert key == f"airflow-{status}"
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{key}` |"))
        if status == 403:
            assert "Op" in row and "accounts.google.com:NUMERIC_USER_ID" in row and "64" in row


def test_combine_prefers_retry_so_nothing_is_lost() -> None:
    done, retry, failed = Outcome(OutcomeKind.DONE, ""), Outcome(OutcomeKind.RETRY, ""), Outcome(OutcomeKind.FAILED, "")
    assert combine([done, retry, failed]) is OutcomeKind.RETRY
    assert combine([done, failed]) is OutcomeKind.FAILED
    assert combine([done, Outcome(OutcomeKind.DUPLICATE, "")]) is OutcomeKind.DONE
    assert combine([]) is OutcomeKind.IGNORED
