from __future__ import annotations

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
        (302, Kind.RETRY),
    ],
)
def test_status_table(status: int, kind: Kind) -> None:
    outcome = classify(status)
    assert outcome.kind is kind
    assert outcome.status == status
    assert outcome.reason


def test_auth_failures_say_how_to_fix_them() -> None:
    for status in (401, 403):
        reason = classify(status).reason
        assert "Op" in reason and "accounts.google.com:NUMERIC_USER_ID" in reason and "64" in reason


def test_combine_prefers_retry_so_nothing_is_lost() -> None:
    done, retry, failed = Outcome(Kind.DONE, ""), Outcome(Kind.RETRY, ""), Outcome(Kind.FAILED, "")
    assert combine([done, retry, failed]) is Kind.RETRY
    assert combine([done, failed]) is Kind.FAILED
    assert combine([done, Outcome(Kind.DUPLICATE, "")]) is Kind.DONE
    assert combine([]) is Kind.IGNORED
    assert not Outcome(Kind.RETRY, "").acknowledged and Outcome(Kind.FAILED, "").acknowledged
