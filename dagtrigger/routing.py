"""Which DAG(s) an event goes to: the built-in ignore rules, then every route whose matchers all pass.

Pure: an Event and the Rules in, a Decision out. When nothing matches, the decision says why for each route, so the
INFO log answers "why did my upload not trigger?" without a debugger.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import storage_events
from .events import NOT_JSON, Event, EventKind
from .rules import Match, Route, Rules, TextMatch


@dataclass(frozen=True)
class Target:
    """One route an event goes to, with the DAG it names."""

    route: Route
    dag_id: str

    @property
    def name(self) -> str:
        return self.route.name


@dataclass(frozen=True)
class Decision:
    """The targets for an event; when there are none, ``reason`` says why and ``severity`` how loudly.

    ``refused`` is set when a webhook named a DAG (``/dags/<id>``) that no route allows: the caller gets 403.
    """

    targets: tuple[Target, ...]
    reason: str = ""
    severity: str = "INFO"
    refused: bool = False


def _ignored(event: Event, rules: Rules) -> str | None:
    """The built-in ignore rules for storage objects: placeholders, temporary uploads, objects flagged by a DAG."""
    if event.storage is None:
        return None
    name = event.storage.name
    if rules.ignore.placeholders and name.endswith("/"):
        return f"{name!r} is a folder placeholder (ends with '/')"
    for pattern in rules.ignore.temporary:
        if pattern.fullmatch(name):
            return f"{name!r} is a temporary upload name"
    metadata = event.storage.resource.get("metadata")
    if isinstance(metadata, Mapping):
        flag = str(metadata.get(rules.ignore.metadata_key, "")).lower()
        if flag in ("1", "true", "yes"):
            return f"object metadata {rules.ignore.metadata_key}={flag}: written by a DAG, ignored to avoid a loop"
    return None


def _field(document: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(document, Mapping) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


_MISSING = object()


def json_body(event: Event) -> Any:
    """The JSON document body matchers look at: a webhook's body or a Pub/Sub message's JSON data."""
    if event.webhook is not None:
        return event.webhook.body
    if event.message is not None and event.message.json_data is not NOT_JSON:
        return event.message.json_data
    return None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def _mismatch(match: Match, event: Event) -> str | None:
    """None when every matcher passes, else the first reason it does not."""
    if match.kinds and event.kind.value not in match.kinds:
        return f"kind is {event.kind.value}, not {'/'.join(match.kinds)}"
    obj = event.storage
    if obj is not None:
        actions = match.actions or storage_events.DEFAULT_ACTIONS
        if event.action not in actions:
            return f"storage event {event.action!r} is not in {list(actions)}"
    storage_tests: list[tuple[TextMatch | None, str, Any]] = [
        (match.bucket, "bucket", obj.bucket if obj else None),
        (match.name, "object name", obj.name if obj else None),
        (match.content_type, "content type", obj.resource.get("contentType") if obj else None),
    ]
    for test, what, value in storage_tests:
        if test is not None:
            why = test.failure(_as_text(value), what)
            if why:
                return why
    if match.size_min is not None or match.size_max is not None:
        try:
            size = int(obj.resource.get("size", "")) if obj else None
        except (TypeError, ValueError):
            size = None
        if size is None:
            return "object size is unknown"
        if match.size_min is not None and size < match.size_min:
            return f"size {size} is below {match.size_min}"
        if match.size_max is not None and size > match.size_max:
            return f"size {size} is above {match.size_max}"
    metadata = obj.resource.get("metadata") if obj else None
    for key, test in match.metadata:
        value = metadata.get(key) if isinstance(metadata, Mapping) else None
        why = test.failure(_as_text(value), f"metadata {key}")
        if why:
            return why
    message = event.message
    for key, test in match.attributes:
        why = test.failure(message.attributes.get(key) if message else None, f"attribute {key}")
        if why:
            return why
    if match.topic is not None:
        why = match.topic.failure(message.topic if message else None, "topic")
        if why:
            return why
    if match.path is not None:
        why = match.path.failure(event.webhook.path if event.webhook else None, "path")
        if why:
            return why
    if match.body:
        body = json_body(event)
        for dotted, expected in match.body:
            value = _field(body, dotted)
            if isinstance(expected, TextMatch):
                why = expected.failure(None if value is _MISSING else _as_text(value), f"body field {dotted}")
                if why:
                    return why
            elif value is _MISSING or value != expected:
                return f"body field {dotted} is not {json.dumps(expected)}"
    if match.exclude is not None and _mismatch(match.exclude, event) is None:
        return "excluded by its exclude rule"
    return None


def _route_failure(route: Route, event: Event) -> str | None:
    why = _mismatch(route.match, event)
    if why is None and route.marker is not None:
        name = event.storage.name if event.storage else None
        if name is None or name.rpartition("/")[2] != route.marker:
            return f"not the marker object {route.marker!r}"
    return why


def route(event: Event, rules: Rules) -> Decision:
    """The targets for an event, in route order."""
    if event.kind is EventKind.UNSUPPORTED:
        return Decision((), f"unsupported event type {event.type!r}: acknowledged, not retried", "WARNING")
    ignored = _ignored(event, rules)
    if ignored:
        return Decision((), f"ignored: {ignored}")
    requested = event.webhook.requested_dag if event.webhook else None
    proven = event.webhook.authenticated_routes if event.webhook else None
    targets: list[Target] = []
    misses: list[str] = []
    for candidate in rules.routes:
        why = _route_failure(candidate, event)
        if why is None and proven is not None and candidate.name not in proven:
            why = "the request's signature is not one of this route's secrets"
        if why is None and requested is not None:
            why = None if rules.allows_dag(candidate, requested) else f"DAG {requested!r} is not in allow_dags"
        if why is None:
            dag_id = requested or candidate.dag_id
            if dag_id is None:
                why = "no dag_id (this route only serves /dags/<dag_id> webhooks)"
            else:
                targets.append(Target(candidate, dag_id))
                continue
        misses.append(f"route {candidate.name!r}: {why}")
    if targets:
        return Decision(tuple(targets))
    if requested is not None:
        return Decision((), f"DAG {requested!r} is not allowed for webhooks", "WARNING", refused=True)
    return Decision((), "matched no route: " + "; ".join(misses))


@dataclass(frozen=True)
class Verdicts:
    """Per route, why it takes a storage event or not (``why`` and ``sweep``): ``ignored`` is the built-in ignore rule
    that drops the event for every route; else ``reasons[i]`` is None when route i takes it, or its first mismatch.
    The same tests ``route`` applies, so the explanation never disagrees with what the function did."""

    ignored: str | None
    reasons: tuple[str | None, ...]


def explain(event: Event, rules: Rules) -> Verdicts:
    """Every route's verdict on a storage event (webhook-only checks do not apply to storage events)."""
    ignored = _ignored(event, rules)
    if ignored:
        return Verdicts(f"ignored: {ignored}", tuple(f"ignored: {ignored}" for _ in rules.routes))
    reasons = []
    for candidate in rules.routes:
        why = _route_failure(candidate, event)
        if why is None and candidate.dag_id is None:
            why = "no dag_id (this route only serves /dags/<dag_id> webhooks)"
        reasons.append(why)
    return Verdicts(None, tuple(reasons))
