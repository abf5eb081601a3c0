"""Where one event goes on a batched route: its group, its window's run id (and Airflow 2 logical dates), and its
member object. Pure and deterministic in the event, so every instance and every redelivery agree."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..exceptions import BatchError
from ..rules import BatchSpec
from ..run_id import digest, logical_dates, squash
from ..templates import Expression
from .windows import Window, iso

# The group when a route names none, per event kind (JMESPath over the template document).
DEFAULT_GROUPS: Mapping[str, str] = {
    "storage": "folder",
    "pubsub": "message.topic || message.subscription",
    "webhook": "path",
}
GROUP_MAX_CHARS = 1024


@functools.lru_cache(maxsize=8)
def _default_group(kind: str) -> Expression | None:
    source = DEFAULT_GROUPS.get(kind)
    return Expression(source, f"the default batch group for {kind} events") if source else None


def group_value(spec: BatchSpec, kind: str, context: Mapping[str, Any]) -> str:
    """The group as text: strings as they are, numbers and booleans as JSON, objects and lists as canonical JSON.

    Raises BatchError (null, too long) or TemplateError (the expression failed on this event).
    """
    expression = spec.group or _default_group(kind)
    if expression is None:
        raise BatchError(f"no default batch group for {kind} events: set batch.group")
    value = expression.evaluate(context)
    if value is None:
        raise BatchError(f"batch.group {expression.source!r} is null for this event")
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > GROUP_MAX_CHARS:
        raise BatchError(f"batch.group {expression.source!r} is over {GROUP_MAX_CHARS} characters for this event")
    return text


def batch_run_id(route: str, group: str, window: Window) -> str:
    """``batch__<route>__<group>__<window start>__<digest>``: the same for every member of a (route, group, window),
    different for any other (the digest covers all three and the window size); ≤ 207 characters, always inside
    Airflow's run-id alphabet."""
    hashed = digest("batch", route, group, iso(window.start), window.size_s)
    return "__".join(("batch", squash(route, 64, True, "root"), squash(group, 100, True, "root"), window.label, hashed))


def v1_logical_dates(route: str, group: str, window: Window) -> Iterator[datetime]:
    """Airflow 2 logical dates for this run, in the order to try: window end plus an offset below one second, keyed
    by (route, group), so two groups (or routes) of one window do not share one; the offsets do not depend on the
    window, so they stay stable (run_id.logical_dates; trigger.py tries the next one while a 409 is not ours)."""
    return logical_dates(window.end, route, group)


def members_prefix(spec: BatchSpec, dag_id: str, run_id: str) -> str:
    """The object prefix of one run's members (ends with '/'): unique per (DAG, run id)."""
    head = f"{spec.prefix}/" if spec.prefix else ""
    return f"{head}{dag_id}/{run_id}/"


def member_name(prefix: str, key: str) -> str:
    """One member per event identity: a redelivery rewrites this object, never writes a second one."""
    return f"{prefix}{key}.json"


@dataclass(frozen=True)
class Placement:
    """Where one member goes: its run, window, group and object."""

    route: str
    dag_id: str
    group: str
    window: Window
    run_id: str
    bucket: str
    prefix: str

    @property
    def members_uri(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"

    def batch_document(self) -> dict[str, Any]:
        """The ``batch`` object in the run's conf (and in the template document of its conf templates)."""
        return {
            "route": self.route,
            "group": self.group,
            "window_start": iso(self.window.start),
            "window_end": iso(self.window.end),
            "members": self.members_uri,
        }


def place(spec: BatchSpec, route: str, dag_id: str, group: str, window: Window) -> Placement:
    run_id = batch_run_id(route, group, window)
    return Placement(route, dag_id, group, window, run_id, spec.bucket, members_prefix(spec, dag_id, run_id))


def member_record(
    placement: Placement, key: str, conf: Mapping[str, Any], event_time: str | None, late: bool
) -> dict[str, Any]:
    """The JSON a DAG reads per member: its key (the event's run-id identity, stable under redelivery), the event's
    default conf, and ``late`` (recorded again here because the run of its own window had already started)."""
    return {
        "key": key,
        "late": late,
        "event_time": event_time,
        "batch_run_id": placement.run_id,
        "window_start": iso(placement.window.start),
        "window_end": iso(placement.window.end),
        "conf": dict(conf),
    }
