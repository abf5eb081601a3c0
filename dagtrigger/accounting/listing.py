"""Routes → the Cloud Storage listings that cover them, and the object versions those listings return.

Cloud Storage cannot filter a listing by time, so what a sweep costs grows with what it lists. Every listing is
narrowed with what the route already says: its buckets, its name prefixes (or exact names), and one name glob passed
on as ``matchGlob``. The narrowing only ever lists a superset of what the route takes: routing (``routing.explain``)
stays the judge of each object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..clock import parse_utc
from ..rules import Route, Rules, TextMatch
from ..storage_events import DEFAULT_ACTIONS, FINALIZED

PAGE_SIZE = 1000  # Cloud Storage's largest page
# Our globs (rules.glob_to_regex) and matchGlob agree on these; anything else stays a client-side test only.
_GLOB_UNSAFE = frozenset("{}\\,")
_STARS = re.compile(r"\*{3,}")


@dataclass(frozen=True)
class Listing:
    """One listing call sequence: ``gs://bucket/prefix*`` filtered by ``match_glob``, for the routes named."""

    bucket: str
    prefix: str
    match_glob: str | None
    routes: tuple[str, ...]

    @property
    def key(self) -> str:
        return json.dumps([self.bucket, self.prefix, self.match_glob], ensure_ascii=False)

    def describe(self) -> str:
        glob = f" matchGlob={self.match_glob}" if self.match_glob else ""
        return f"gs://{self.bucket}/{self.prefix}*{glob}"


@dataclass(frozen=True)
class Unswept:
    """A route (or part of one) a sweep cannot check, and why: said in the summary, never silently skipped."""

    route: str
    reason: str


@dataclass(frozen=True)
class ObjectVersion:
    """One listed object: its JSON API resource (what the storage CloudEvent carries as data) and creation time."""

    bucket: str
    name: str
    generation: str
    created: datetime | None
    resource: Mapping[str, Any]

    @classmethod
    def from_resource(cls, resource: Mapping[str, Any]) -> ObjectVersion:
        created = None
        try:
            created = parse_utc(str(resource.get("timeCreated") or ""))
        except ValueError:
            pass
        return cls(str(resource["bucket"]), str(resource["name"]), str(resource["generation"]), created, resource)


def takes_finalized(route: Route) -> bool:
    kinds = route.match.kinds
    return (not kinds or "storage" in kinds) and FINALIZED in (route.match.actions or DEFAULT_ACTIONS)


def _buckets(route: Route, default_buckets: tuple[str, ...]) -> tuple[str, ...]:
    test = route.match.bucket
    candidates = test.equals if test is not None and test.equals else default_buckets
    return tuple(b for b in candidates if test is None or test.failure(b, "bucket") is None)


def _prefixes(test: TextMatch | None) -> tuple[str, ...]:
    """The name prefixes a listing may use: exact names or prefixes, the shortest of overlapping ones; ("",) for all."""
    if test is None:
        return ("",)
    heads = test.equals or test.prefix
    if not heads:
        return ("",)
    kept: list[str] = []
    for head in sorted(set(heads)):
        if not any(head.startswith(k) for k in kept):
            kept.append(head)
    return tuple(kept)


def _globs(test: TextMatch | None) -> tuple[str, ...]:
    if test is None or not test.glob:
        return ()
    try:
        spec = json.loads(test.source)
    except ValueError:
        return ()
    raw = spec.get("glob") if isinstance(spec, dict) else None
    return tuple(raw) if isinstance(raw, list) else ((raw,) if isinstance(raw, str) else ())


def match_glob(globs: tuple[str, ...]) -> str | None:
    """Our path globs as one ``matchGlob`` that lists a superset of what they match: ``**/`` (zero or more folders)
    becomes ``**``; several become ``{a,b}``. None when a glob uses what the two syntaxes read differently."""
    if not globs or any(_GLOB_UNSAFE & set(g) or "[!" in g for g in globs):
        return None
    converted = [_STARS.sub("**", g.replace("**/", "**")) for g in globs]
    return converted[0] if len(converted) == 1 else "{" + ",".join(converted) + "}"


def _literal_head(glob: str) -> str:
    """The part of a glob before its first wildcard: a prefix every match starts with."""
    cut = min((i for i, c in enumerate(glob) if c in "*?["), default=len(glob))
    return glob[:cut]


def plan(
    rules: Rules, route_names: tuple[str, ...] | None, default_buckets: tuple[str, ...]
) -> tuple[tuple[Listing, ...], tuple[Unswept, ...]]:
    """The listings that cover every storage route taking ``finalized`` events (or the routes named), merged where
    routes share one; and what cannot be swept, with why."""
    merged: dict[tuple[str, str, str | None], list[str]] = {}
    unswept: list[Unswept] = []
    for route in rules.routes:
        if route_names is not None and route.name not in route_names:
            continue
        other = [a for a in (route.match.actions or DEFAULT_ACTIONS) if a != FINALIZED]
        if other and (not route.match.kinds or "storage" in route.match.kinds):
            unswept.append(
                Unswept(
                    route.name, f"{'/'.join(other)} events cannot be rebuilt from a listing (see docs/accounting.md)"
                )
            )
        if not takes_finalized(route) or route.dag_id is None:
            continue
        buckets = _buckets(route, default_buckets)
        if not buckets:
            unswept.append(Unswept(route.name, "the route names no bucket: pass --bucket NAME"))
            continue
        globs = _globs(route.match.name)
        pattern = match_glob(globs)
        prefixes = _prefixes(route.match.name)
        if prefixes == ("",) and len(globs) == 1:
            prefixes = (_literal_head(globs[0]),)
        for bucket in buckets:
            for prefix in prefixes:
                merged.setdefault((bucket, prefix, pattern), []).append(route.name)
    listings = tuple(Listing(b, p, g, tuple(names)) for (b, p, g), names in sorted(merged.items(), key=str))
    return listings, tuple(unswept)


def list_objects(
    client: Any, listing: Listing, start_after: str | None, on_page: Callable[[], None]
) -> Iterator[ObjectVersion]:
    """The live object versions of one listing in name order, after ``start_after`` (a cursor) when given; one
    storage call per page (``on_page``). Raises google-cloud-storage's errors unchanged."""
    blobs = client.list_blobs(
        listing.bucket,
        prefix=listing.prefix or None,
        match_glob=listing.match_glob,
        start_offset=start_after,
        page_size=PAGE_SIZE,
    )
    for page in blobs.pages:
        on_page()
        for blob in page:
            resource = dict(blob._properties)
            if start_after is not None and str(resource.get("name", "")) <= start_after:
                continue  # start_offset is inclusive (and an emulator may ignore it)
            if not resource.get("name") or not resource.get("generation"):
                continue
            resource.setdefault("bucket", listing.bucket)
            yield ObjectVersion.from_resource(resource)
