"""dagtrigger/deadletter/proof.py: which recorded fields count as changed."""

from __future__ import annotations

from dagtrigger.deadletter.proof import differences

LIVE = {"name": "a.csv", "generation": "17", "size": "9", "metadata": {"source": "erp"}, "etag": "CAE="}


def test_the_same_resource_has_no_differences() -> None:
    assert differences(dict(LIVE), LIVE) == []
    assert differences({"name": "a.csv", "generation": 17, "size": 9}, LIVE) == []  # numbers as senders write them


def test_a_changed_missing_or_invented_field_is_a_difference() -> None:
    recorded = {**LIVE, "size": "999", "metadata": {"source": "attacker"}, "invented": "x"}
    assert differences(recorded, LIVE) == ["invented", "metadata", "size"]
    assert differences({"size": True}, {"size": "True"}) == ["size"]  # a bool is not the text "True"
