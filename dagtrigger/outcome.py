"""What the caller must do with a result: done, duplicate, ignored, retry later, or failed for good.

The decision is a table keyed by Airflow's status code, so the policy can be read (and documented) in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    DONE = "done"  # a new DAG run was created
    DUPLICATE = "duplicate"  # the run already existed (redelivery): success
    IGNORED = "ignored"  # nothing to trigger for this event: acknowledged
    RETRY = "retry"  # transient: answer non-2xx so Eventarc / Pub/Sub redeliver
    FAILED = "failed"  # permanent: acknowledged and recorded with an ERROR log


SEVERITY = {
    Kind.DONE: "INFO",
    Kind.DUPLICATE: "INFO",
    Kind.IGNORED: "INFO",
    Kind.RETRY: "WARNING",
    Kind.FAILED: "ERROR",
}


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    reason: str
    status: int | None = None  # Airflow's HTTP status, when there was one
    sender_fault: bool = False  # the event itself cannot make a valid run (a webhook caller gets 422)


# status → (kind, what it means [its key in docs/troubleshooting.md, where the fix is written once]). Statuses not
# listed fall back by class (see classify).
STATUS_TABLE: dict[int, tuple[Kind, str]] = {
    200: (Kind.DONE, "DAG run created"),
    201: (Kind.DONE, "DAG run created"),
    409: (Kind.DUPLICATE, "already triggered: a run with this run id exists"),
    400: (Kind.FAILED, "Airflow rejected the request"),
    404: (Kind.FAILED, "the DAG does not exist in Airflow (or is not parsed yet); check DAG_ID [airflow-404]"),
    405: (Kind.FAILED, "this API is not served here; check AIRFLOW_API_VERSION [airflow-405]"),
    413: (Kind.FAILED, "Airflow refused the body as too large; lower MAX_CONF_BYTES or shrink the conf"),
    422: (Kind.FAILED, "Airflow rejected the request body"),
    401: (Kind.RETRY, "not authenticated: Airflow wants other credentials [airflow-401]"),
    403: (Kind.RETRY, "permission denied: the caller needs the Airflow Op role, or its IP is blocked [airflow-403]"),
    408: (Kind.RETRY, "Airflow timed out the request"),
    429: (Kind.RETRY, "Airflow is shedding load (429)"),
}


def classify(status: int) -> Outcome:
    """Map one Airflow status code to an outcome (after in-process retries are spent)."""
    if status in STATUS_TABLE:
        kind, reason = STATUS_TABLE[status]
        return Outcome(kind, reason, status)
    if 300 <= status < 400:
        # Never followed (the credential would go along) and never retried (a redirect does not go away by itself).
        return Outcome(
            Kind.FAILED,
            "Airflow answered with a redirect, which is never followed with credentials: set AIRFLOW_URI to the final "
            "address [airflow-redirect]",
            status,
        )
    if status >= 500:
        return Outcome(Kind.RETRY, "Airflow server error", status)
    if 400 <= status < 500:
        return Outcome(Kind.FAILED, "Airflow refused the request", status)
    return Outcome(Kind.FAILED, f"unexpected status {status}", status)


def combine(outcomes: list[Outcome]) -> Kind:
    """One answer for an event that went to several DAGs: any retry means redeliver (the others answer 409 then)."""
    kinds = {o.kind for o in outcomes}
    for kind in (Kind.RETRY, Kind.FAILED, Kind.DONE, Kind.DUPLICATE):
        if kind in kinds:
            return kind
    return Kind.IGNORED
