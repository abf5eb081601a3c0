"""Which DAG(s) an event goes to. Today: the one ``DAG_ID`` route plus the built-in ignore rules.

Kept apart from the pipeline so richer routing (rules from a file, several DAGs per event) replaces only this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import Event, Kind
from .settings import Settings


@dataclass(frozen=True)
class Target:
    dag_id: str
    route: str = "default"
    note: str | None = None


@dataclass(frozen=True)
class Decision:
    """The targets for an event; when there are none, ``reason`` says why and ``severity`` how loudly."""

    targets: tuple[Target, ...]
    reason: str = ""
    severity: str = "INFO"


def route(event: Event, settings: Settings) -> Decision:
    if event.kind is Kind.UNSUPPORTED:
        return Decision((), f"unsupported event type {event.type!r}: acknowledged, not retried", "WARNING")
    if event.kind is Kind.STORAGE and event.action not in settings.storage_actions:
        enabled = ",".join(sorted(settings.storage_actions))
        return Decision((), f"storage event {event.action!r} is not enabled (STORAGE_EVENT_TYPES={enabled})")
    return Decision((Target(settings.dag_id),))
