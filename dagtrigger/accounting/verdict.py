"""Expectation + what the ledger holds → one verdict per (object version, route). Pure: no I/O, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    TRIGGERED = "triggered"  # the run exists (batched: the member is recorded and its window's run exists)
    DEAD_LETTERED = "dead_lettered"  # failed for good and recorded: `replay` is the tool
    IGNORED = "ignored"  # no route / an ignore rule / not a marker: nothing was due
    PENDING = "pending"  # batched: member recorded, its window not closed yet (the run starts then)
    MISSING = "missing"  # should have a run and has neither run, member nor dead letter: `sweep` sends it


@dataclass(frozen=True)
class Facts:
    """What the ledger holds for one expectation."""

    run_exists: bool
    dead_letter: bool
    batched: bool = False
    member_recorded: bool = False
    window_open: bool = False


def decide(facts: Facts) -> Verdict:
    """A run that exists wins (a replayed dead letter made it); then a dead letter. A batched member is pending while
    its window is open; a member whose closed window has no run is missing: the sweep makes the run."""
    if facts.batched:
        if facts.member_recorded and facts.window_open:
            return Verdict.PENDING
        if facts.member_recorded and facts.run_exists:
            return Verdict.TRIGGERED
        if facts.dead_letter:
            return Verdict.DEAD_LETTERED
        return Verdict.MISSING
    if facts.run_exists:
        return Verdict.TRIGGERED
    if facts.dead_letter:
        return Verdict.DEAD_LETTERED
    return Verdict.MISSING
