"""What the caller must do with a result: done, duplicate, ignored, retry later, or failed for good.

The decision is a table keyed by Airflow's status code, so the policy can be read (and documented) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .exceptions import DagtriggerError


class OutcomeKind(Enum):
    DONE = "done"  # a new DAG run was created
    DUPLICATE = "duplicate"  # the run already existed (redelivery): success
    IGNORED = "ignored"  # nothing to trigger for this event: acknowledged
    RETRY = "retry"  # transient: answer non-2xx so Eventarc / Pub/Sub redeliver
    FAILED = "failed"  # permanent: acknowledged and recorded with an ERROR log


SEVERITY = {
    OutcomeKind.DONE: "INFO",
    OutcomeKind.DUPLICATE: "INFO",
    OutcomeKind.IGNORED: "INFO",
    OutcomeKind.RETRY: "WARNING",
    OutcomeKind.FAILED: "ERROR",
}


@dataclass(frozen=True)
class Outcome:
    """What became of one trigger: its kind, the reason in words and Airflow's status, if any."""

    kind: OutcomeKind
    reason: str
    status: int | None = None  # Airflow's HTTP status, when there was one
    sender_fault: bool = False  # the event itself cannot make a valid run (a webhook caller gets 422)


# status → (kind, what it means [its key in docs/troubleshooting.md, where the fix is written once]). Statuses not
# listed fall back by class (see classify).
STATUS_TABLE: dict[int, tuple[OutcomeKind, str]] = {
    200: (OutcomeKind.DONE, "DAG run created"),
    201: (OutcomeKind.DONE, "DAG run created"),
    409: (OutcomeKind.DUPLICATE, "already triggered: a run with this run id exists"),
    400: (OutcomeKind.FAILED, "Airflow rejected the request"),
    404: (OutcomeKind.FAILED, "the DAG does not exist in Airflow (or is not parsed yet); check DAG_ID [airflow-404]"),
    405: (OutcomeKind.FAILED, "this API is not served here; check AIRFLOW_API_VERSION [airflow-405]"),
    413: (OutcomeKind.FAILED, "Airflow refused the body as too large; lower MAX_CONF_BYTES or shrink the conf"),
    422: (OutcomeKind.FAILED, "Airflow rejected the request body"),
    401: (OutcomeKind.RETRY, "not authenticated: Airflow wants other credentials [airflow-401]"),
    403: (
        OutcomeKind.RETRY,
        "permission denied: the caller needs the Airflow Op role, or its IP is blocked [airflow-403]",
    ),
    408: (OutcomeKind.RETRY, "Airflow timed out the request"),
    429: (OutcomeKind.RETRY, "Airflow is shedding load (429)"),
}


def from_error(error: DagtriggerError, prefix: str = "", sender_fault: bool = False) -> Outcome:
    """An error as an outcome: retried when it is transient, failed (recorded) otherwise; the reason is its message.

    The one mapping from errors to outcomes: the plain path, batch windows, replay and sweep all go through it, so
    the same error never ends as a dead letter on one path and a 24-hour redelivery on another."""
    kind = OutcomeKind.RETRY if error.transient else OutcomeKind.FAILED
    return Outcome(kind, f"{prefix}{error}", sender_fault=sender_fault)


def classify(status: int) -> Outcome:
    """Map one Airflow status code to an outcome (after in-process retries are spent)."""
    if status in STATUS_TABLE:
        kind, reason = STATUS_TABLE[status]
        return Outcome(kind, reason, status)
    if 300 <= status < 400:
        # Never followed (the credential would go along) and never retried (a redirect does not go away by itself).
        return Outcome(
            OutcomeKind.FAILED,
            "Airflow answered with a redirect, which is never followed with credentials: set AIRFLOW_URI to the final "
            "address [airflow-redirect]",
            status,
        )
    if status >= 500:
        return Outcome(OutcomeKind.RETRY, "Airflow server error", status)
    if 400 <= status < 500:
        return Outcome(OutcomeKind.FAILED, "Airflow refused the request", status)
    return Outcome(OutcomeKind.FAILED, f"unexpected status {status}", status)


def combine(outcomes: list[Outcome]) -> OutcomeKind:
    """One answer for an event that went to several DAGs: any retry means redeliver (the others answer 409 then)."""
    kinds = {o.kind for o in outcomes}
    for kind in (OutcomeKind.RETRY, OutcomeKind.FAILED, OutcomeKind.DONE, OutcomeKind.DUPLICATE):
        if kind in kinds:
            return kind
    return OutcomeKind.IGNORED
