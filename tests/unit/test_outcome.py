from __future__ import annotations

from pathlib import Path

import pytest

from dagtrigger.outcome import Kind, Outcome, classify, combine


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, Kind.DONE),
        (201, Kind.DONE),
        (409, Kind.DUPLICATE),
        (400, Kind.FAILED),
        (404, Kind.FAILED),
        (405, Kind.FAILED),
        (422, Kind.FAILED),
        (418, Kind.FAILED),
        (401, Kind.RETRY),
        (403, Kind.RETRY),
        (408, Kind.RETRY),
        (429, Kind.RETRY),
        (500, Kind.RETRY),
        (503, Kind.RETRY),
        (302, Kind.FAILED),  # never followed with credentials, and retrying cannot help
    ],
)
def test_status_table(status: int, kind: Kind) -> None:
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
    done, retry, failed = Outcome(Kind.DONE, ""), Outcome(Kind.RETRY, ""), Outcome(Kind.FAILED, "")
    assert combine([done, retry, failed]) is Kind.RETRY
    assert combine([done, failed]) is Kind.FAILED
    assert combine([done, Outcome(Kind.DUPLICATE, "")]) is Kind.DONE
    assert combine([]) is Kind.IGNORED
