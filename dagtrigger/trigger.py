"""One DAG run made certain: the trigger POST, and what Airflow's answer proves.

A 409 proves only that the new run clashed with one that exists: by its run id (ours: the event came again, so it is
done) or, on Airflow 2, by its logical date: ``(dag_id, logical_date)`` is unique too, and a trigger without one gets
the server's now(), so two triggers of one DAG in one instant, or a run someone created with that date, collide
(apache/airflow#28486). So a 409 is followed by a read of our run id: found, the run is ours (duplicate); not found,
the trigger is sent again, on Airflow 2 with a logical date of our own (``run_id.logical_dates``). The plain path,
batch windows and replay all come through ``trigger``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from .airflow import AirflowClient, AirflowReply, TriggerCall
from .clock import Clock
from .exceptions import AirflowUnreachable, CredentialsUnavailable
from .outcome import Outcome, OutcomeKind, classify, from_error
from .run_id import logical_dates

# Airflow 3 gets a null logical date, so only our run id can clash: a 409 without our run is a passing race (or a
# proxy's answer), sent once more, then left to the platform's redelivery.
V2_ATTEMPTS = 2
CONFLICT = "[airflow-409-conflict]"


def trigger(client: AirflowClient, call: TriggerCall, clock: Clock) -> Outcome:
    """POST ``call`` until Airflow creates the run or shows that ours exists; errors become outcomes
    (``outcome.from_error``). An unresolved conflict is a retry, never a duplicate: the event is redelivered."""
    try:
        return _settle(client, call, clock)
    except AirflowUnreachable as exc:
        return from_error(exc, "Airflow unreachable: ")
    except CredentialsUnavailable as exc:
        return from_error(exc, "no credentials: ")


def _settle(client: AirflowClient, call: TriggerCall, clock: Clock) -> Outcome:
    taken: list[datetime | None] = []  # logical dates another run held (None: the one Airflow picked)
    for logical_date in _dates(call, client.api_version(), clock):
        reply = client.trigger(call, logical_date)
        if reply.status != 409:
            outcome = _classified(client, reply)
            if taken and outcome.kind is OutcomeKind.DONE:
                held = "the date Airflow picked" if taken[0] is None else taken[0].isoformat()
                mine = f", this run has {logical_date.isoformat()}" if logical_date else ""
                outcome = replace(outcome, reason=f"{outcome.reason} (another run held {held}{mine})")
            return outcome
        if client.run_state(call.dag_id, call.run_id) is not None:
            return _classified(client, reply)  # ours: the event came again
        taken.append(logical_date)
    return Outcome(
        OutcomeKind.RETRY,
        f"Airflow answered 409 {len(taken)} times, yet no run {call.run_id!r} exists: another run holds what this one "
        f"needs (on Airflow 2 its logical date) {CONFLICT}",
        409,
    )


def _dates(call: TriggerCall, version: str, clock: Clock) -> Iterator[datetime | None]:
    """The logical date of each attempt: Airflow 3 sends none; Airflow 2 the call's own dates (a batch window's), or
    Airflow's now() first and then dates of our own in the second before now (never a future one: it would wait)."""
    if version == "v2":
        yield from [None] * V2_ATTEMPTS
    elif call.logical_dates:
        yield from call.logical_dates
    else:
        yield None
        second = clock.now().replace(microsecond=0) - timedelta(seconds=1)
        yield from logical_dates(second, call.dag_id, call.run_id)


def _classified(client: AirflowClient, reply: AirflowReply) -> Outcome:
    outcome = classify(reply.status)
    if outcome.kind in (OutcomeKind.DONE, OutcomeKind.DUPLICATE):
        return outcome
    who = f" (calling as {client.auth.identity()})" if reply.status in (401, 403) else ""
    detail = f"Airflow answered {reply.status}{who}: {reply.message or '(no message)'}; {outcome.reason}"
    return Outcome(outcome.kind, detail, reply.status)
