"""What a load run sends: distinct events (built by ``dagtrigger.send``, the builder ``python -m dagtrigger send``
uses) and their deliveries as the platform makes them: every event once, some twice (a redelivery later in the
burst, or a concurrent copy), each delivery assigned to one of N function instances.

An event is found again by its ``key``: in a run's conf (the object name, or ``load_key`` in a Pub/Sub payload) or
in a dead letter's raw delivery, never from the run id, which is what is under test.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagtrigger.send import pubsub_event, storage_event
from loadtest.fake_airflow import REFUSE_MARKER

MAX_CONF_BYTES = 8192  # an "oversize" poison event carries more than this: failed without a call, dead-lettered
LANDING = "load-landing"
TOPIC = "projects/load-project/topics/load"


@dataclass(frozen=True)
class LoadEvent:
    """One distinct event (one object version, or one Pub/Sub message).

    ``poison``: None, ``"oversize"`` (its conf is over MAX_CONF_BYTES: refused by the function itself) or
    ``"refused"`` (the fake Airflow answers 400): both must end as exactly one dead letter.
    """

    index: int
    key: str
    kind: str  # "storage" | "pubsub"
    poison: str | None
    event_id: str
    build: Mapping[str, Any]  # the keyword arguments of the dagtrigger.send builder


def zlib_id(text: str) -> str:
    """A short numeric prefix from the run tag, so message ids of different runs never collide."""
    return str(zlib.crc32(text.encode()) % 100_000).zfill(5)


def make_events(
    tag: str, count: int, *, pubsub: float = 0.25, poison: float = 0.0, poison_kind: str = "oversize", seed: int = 1
) -> list[LoadEvent]:
    """``count`` distinct events: uploads (a new object version each) and Pub/Sub messages (a new message id each)."""
    rng = random.Random(seed)
    made = []
    now = datetime.now(UTC)
    for index in range(count):
        key = f"{tag}-{index:06d}"
        bad = poison_kind if rng.random() < poison else None
        metadata: dict[str, str] = {"source": "load"}
        if bad == "oversize":
            metadata["pad"] = "x" * (MAX_CONF_BYTES + 512)
        elif bad == "refused":
            metadata[REFUSE_MARKER] = "true"
        if rng.random() < pubsub:
            message_id = f"{zlib_id(tag)}{index:07d}"
            payload = json.dumps({"load_key": key, "n": index, "metadata": metadata}).encode()
            build = {"data": payload, "attributes": {"origin": "load"}, "topic": TOPIC, "now": now}
            made.append(LoadEvent(index, key, "pubsub", bad, message_id, build))
            continue
        build = {
            "bucket": LANDING,
            "name": f"load/{tag}/{key}.csv",
            "generation": str(1_764_000_000_000_000 + index),
            "size": 1024,
            "metadata": metadata,
            "now": now,
        }
        made.append(LoadEvent(index, key, "storage", bad, f"gcs-{key}", build))
    return made


def key_from_conf(conf: Mapping[str, Any]) -> str | None:
    """The event a run was created for, read from its conf."""
    if isinstance(conf.get("load_key"), str):
        return str(conf["load_key"])
    name = conf.get("name")
    if isinstance(name, str) and name.startswith("load/") and name.endswith(".csv"):
        return name.rsplit("/", 1)[-1][: -len(".csv")]
    return None


def key_from_dead_letter(record: Mapping[str, Any]) -> str | None:
    """The event a dead letter stands for, read from the event as it was received (``raw``)."""
    data = (record.get("raw") or {}).get("data") or {}
    if isinstance(data.get("name"), str):
        return key_from_conf(data)
    message = data.get("message") or {}
    try:
        payload = json.loads(base64.b64decode(message.get("data") or ""))
    except ValueError:
        return None
    return key_from_conf(payload) if isinstance(payload, dict) else None


@dataclass(frozen=True)
class Delivery:
    """One copy of an event as the platform POSTs it, to instance ``instance`` (an index into the targets).

    Copy 1 of an upload has a new event id (Cloud Storage sends re-notifications so); copy 1 of a message keeps
    its id (a Pub/Sub redelivery). ``twin``: both copies are released at the same moment, so two instances handle
    them concurrently. A redelivery after a failed attempt goes to the next instance (``instance + attempt``).
    """

    event: LoadEvent
    copy: int
    instance: int
    headers: Mapping[str, str]
    body: bytes
    twin: threading.Barrier | None = field(default=None, compare=False)


def encode(event: LoadEvent, copy: int, instance: int, twin: threading.Barrier | None = None) -> Delivery:
    """The HTTP request of one delivery, built by ``dagtrigger.send`` (binary content mode, as Eventarc sends)."""
    if event.kind == "storage":
        event_id = f"{event.event_id}-again-{copy}" if copy else event.event_id
        outgoing = storage_event("", event_id=event_id, **event.build)
    else:
        outgoing = pubsub_event("", message_id=event.event_id, **event.build)
    return Delivery(event, copy, instance, dict(outgoing.headers), outgoing.body, twin)


def plan_deliveries(
    events: Sequence[LoadEvent],
    *,
    duplicates: float,
    concurrent: float = 0.5,
    concurrency: int = 16,
    instances: int = 1,
    seed: int = 2,
) -> list[Delivery]:
    """Every event once, round-robin over ``instances``, plus a second copy of ``duplicates`` of them on the next
    instance: ``concurrent`` of those copies are sent at the same moment as the first, the others later in the
    burst (a few hundred deliveries on)."""
    rng = random.Random(seed)
    doubled = rng.sample(range(len(events)), round(len(events) * duplicates))
    together = set(doubled[: round(len(doubled) * concurrent)])
    later = set(doubled) - together
    ordered: list[tuple[float, Delivery]] = []
    for position, event in enumerate(events):
        home = position % instances
        other = (home + 1) % instances
        twin = threading.Barrier(2) if event.index in together else None
        ordered.append((position, encode(event, 0, home, twin)))
        if event.index in together:
            ordered.append((position + 0.5, encode(event, 1, other, twin)))
        elif event.index in later:
            due = position + rng.randint(2 * concurrency, 10 * concurrency) + 0.25
            ordered.append((due, encode(event, 1, other)))
    ordered.sort(key=lambda pair: pair[0])
    return [delivery for _, delivery in ordered]
