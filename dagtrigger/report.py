"""What happened to one event, in the words each audience gets: the operator's log line and full reasons, the
Eventarc/push caller's status, and a webhook caller's public answer (outcomes and run ids, never Airflow's words)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .events import Event
from .outcome import Outcome, OutcomeKind
from .routing import Target

PUBLIC_REASONS = {
    OutcomeKind.DONE: "DAG run created",
    OutcomeKind.DUPLICATE: "already triggered: this request's run exists",
    OutcomeKind.IGNORED: "no route takes this request",
    OutcomeKind.RETRY: "Airflow cannot take the run now: send the same request again later",
    OutcomeKind.FAILED: "the run could not be created; the operator has the reason",
}


@dataclass(frozen=True)
class TargetResult:
    """One route's part of an event: the run it made (or would have made) and its outcome."""

    target: Target
    run_id: str
    outcome: Outcome

    def log_text(self) -> str:
        """The operator's one line for this result (logs); the reason in full, redacted by the log handler."""
        dag, reason = self.target.dag_id, self.outcome.reason
        return {
            OutcomeKind.DONE: f"triggered DAG {dag!r}",
            OutcomeKind.DUPLICATE: f"already triggered DAG {dag!r} for this event: counted as done",
            OutcomeKind.RETRY: f"DAG {dag!r} not triggered yet, the event will be redelivered: {reason}",
            OutcomeKind.FAILED: f"DAG {dag!r} not triggered, acknowledged without retry: {reason}",
        }.get(self.outcome.kind, reason)


@dataclass(frozen=True)
class EventReport:
    """Everything that happened to one event; the entry points turn it into an HTTP answer."""

    event: Event
    kind: OutcomeKind
    reason: str
    results: tuple[TargetResult, ...] = ()

    @property
    def acknowledged(self) -> bool:
        return self.kind is not OutcomeKind.RETRY

    def public_json(self) -> dict[str, Any]:
        """What a webhook caller may see: outcomes and run ids; never Airflow's words, addresses or identities
        (those go to the logs and dead letters, redacted)."""
        return {
            "outcome": self.kind.value,
            "event_id": self.event.id,
            "reason": PUBLIC_REASONS[self.kind],
            "runs": [
                {"dag_id": r.target.dag_id, "run_id": r.run_id, "outcome": r.outcome.kind.value} for r in self.results
            ],
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.kind.value,
            "event_id": self.event.id,
            "reason": self.reason,
            "runs": [
                {
                    "dag_id": r.target.dag_id,
                    "run_id": r.run_id,
                    "outcome": r.outcome.kind.value,
                    "status": r.outcome.status,
                    "reason": r.outcome.reason,
                }
                for r in self.results
            ],
        }
