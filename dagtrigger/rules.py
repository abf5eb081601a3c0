"""Routing rules from configuration (a YAML or JSON file, or the one-route ``DAG_ID`` shortcut), validated once.

Every error names the file, the route and the field
(``routes.yaml → route 'orders'.match.size.min: must be an integer ≥ 0 [config-invalid]``), so a bad file stops the
deployment at start-up instead of misrouting events.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import storage_events
from .exceptions import ConfigError
from .gcs import bucket_problem, location_uri, parse_location
from .globs import Glob
from .redaction import Secret
from .settings import is_dag_id, webhook_secret
from .storage_events import NO_CHANNELS, Channels

# Webhook signatures and templates are imported where a route uses them: at a cold start every import of main runs
# before the port opens, and a DAG_ID deployment or plain routes use neither (test_startup.py).
if TYPE_CHECKING:
    from .templates import Expression, TextTemplate

KINDS = ("storage", "pubsub", "webhook")
ROUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # fullmatch
CHANNEL = re.compile(r"projects/[a-z0-9.:-]{1,100}/(?:topics|subscriptions)/[A-Za-z0-9._~+%-]{1,255}")  # fullmatch
DEFAULT_TEMPORARY = (
    "**/_temporary/**",
    "_temporary/**",
    "**/*._COPYING_",
    "*._COPYING_",
    "**/*.tmp",
    "*.tmp",
    "**/*.temp",
    "*.temp",
    "**/*.part",
    "*.part",
    "**/.~*",
    ".~*",
    "gcloud/tmp/parallel_composite_uploads/**",
)
IGNORE_METADATA_KEY = "dagtrigger-ignore"
MANIFEST_MAX_BYTES = 64 * 1024


def glob_to_regex(pattern: str) -> Glob:
    """Path globs: ``*`` and ``?`` stay inside one folder, ``**/`` spans folders, ``[...]`` is a class (globs.py)."""
    return Glob(pattern)


WINDOW_MAX_S = 86_400  # the longest batch window


@dataclass(frozen=True)
class BatchSpec:
    """A route's ``batch:`` field, validated."""

    window_s: int
    group: Expression | None  # None: DEFAULT_GROUPS by event kind
    bucket: str
    prefix: str  # no slash at either end; "" for the bucket root

    @property
    def members_uri(self) -> str:
        return location_uri(self.bucket, self.prefix)


def parse_batch(value: Any, path: str, error: Callable[[str, str], ConfigError], where: str) -> BatchSpec:
    """Validate ``batch: {window, group, members}``; ``error(field path, problem)`` names the route and field."""
    if not isinstance(value, Mapping):
        raise error(path, "must be a mapping with window, group and members")
    unknown = sorted(set(value) - {"window", "group", "members"})
    if unknown:
        raise error(path, f"unknown field(s) {', '.join(map(str, unknown))}; allowed: window, group, members")
    window = value.get("window")
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= WINDOW_MAX_S:
        raise error(f"{path}.window", f"must be a whole number of seconds from 1 to {WINDOW_MAX_S} (e.g. 60)")
    group = value.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise error(f"{path}.group", "must be a JMESPath expression such as folder (the default for storage)")
    members = value.get("members")
    if not isinstance(members, str) or not members.startswith("gs://"):
        raise error(f"{path}.members", "is required: the gs://bucket/prefix where members are recorded")
    try:
        bucket, prefix = parse_location(members)
    except ValueError as exc:
        raise error(f"{path}.members", f"{exc} (e.g. gs://ops-bucket/batches)") from None
    from .templates import Expression

    return BatchSpec(
        window_s=window,
        group=Expression(group, f"{where} → {path}.group") if group is not None else None,
        bucket=bucket,
        prefix=prefix,
    )


@dataclass(frozen=True)
class TextMatch:
    """Each given test must pass; a list inside one test means any of its values."""

    equals: tuple[str, ...] = ()
    prefix: tuple[str, ...] = ()
    suffix: tuple[str, ...] = ()
    glob: tuple[Glob, ...] = ()
    regex: tuple[re.Pattern[str], ...] = ()
    source: str = ""

    def failure(self, value: str | None, what: str) -> str | None:
        """None when the value matches, else a short reason (for the 'matched no route' log)."""
        if value is None:
            return f"{what} is absent"
        if self.equals and value not in self.equals:
            return f"{what} is not {' or '.join(self.equals)}"
        if self.prefix and not value.startswith(self.prefix):
            return f"{what} does not start with {' or '.join(self.prefix)}"
        if self.suffix and not value.endswith(self.suffix):
            return f"{what} does not end with {' or '.join(self.suffix)}"
        if self.glob and not any(g.fullmatch(value) for g in self.glob):
            return f"{what} does not match glob {' or '.join(g.pattern for g in self.glob)}"
        if self.regex and not any(r.search(value) for r in self.regex):
            return f"{what} does not match regex {' or '.join(r.pattern for r in self.regex)}"
        return None


@dataclass(frozen=True)
class Match:
    """A route's matchers; every one given must pass."""

    kinds: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    bucket: TextMatch | None = None
    name: TextMatch | None = None
    content_type: TextMatch | None = None
    size_min: int | None = None
    size_max: int | None = None
    metadata: tuple[tuple[str, TextMatch], ...] = ()
    attributes: tuple[tuple[str, TextMatch], ...] = ()
    topic: TextMatch | None = None
    path: TextMatch | None = None
    body: tuple[tuple[str, Any], ...] = ()
    exclude: Match | None = None


@dataclass(frozen=True)
class Manifest:
    """Where a route reads a manifest (templated object and bucket, the buckets allowed), its conf key, its size cap."""

    object: Expression
    bucket: Expression | None
    into: str
    max_bytes: int
    buckets: tuple[str, ...] = ()  # where manifests may be read; empty: only the storage event's own bucket


@dataclass(frozen=True)
class WebhookAuth:
    """How a route's webhooks are signed: its own secrets (current first, then the one being rotated out) or, when
    empty, the deployment's WEBHOOK_HMAC_SECRET; ``scheme`` is one of signature.SCHEMES."""

    scheme: str = "dagtrigger-v2"
    secrets: tuple[Secret, ...] = ()


@dataclass(frozen=True)
class Route:
    """One route of the rules: its matchers, the DAG, the conf and run-id templates, and its options."""

    name: str
    dag_id: str | None
    match: Match
    allow_dags: tuple[str, ...] = ()
    marker: str | None = None
    conf: tuple[tuple[str, Expression], ...] = ()
    conf_base: str = "event"
    run_id: TextTemplate | None = None
    note: TextTemplate | None = None
    manifest: Manifest | None = None
    webhook: WebhookAuth = field(default_factory=WebhookAuth)
    shares_dag: bool = False  # another route targets the same DAG: the route name joins the run-id identity
    batch: BatchSpec | None = None  # one run per (route, group, window) instead of one per event: see batch/

    @property
    def named_buckets(self) -> tuple[str, ...]:
        """The buckets this route names exactly (``match.bucket`` equals): bucket names no event chooses."""
        return self.match.bucket.equals if self.match.bucket is not None else ()

    @property
    def takes_webhooks(self) -> bool:
        """Whether webhooks can reach this route at all (no kind named, or ``webhook`` among them)."""
        return not self.match.kinds or "webhook" in self.match.kinds


@dataclass(frozen=True)
class Ignore:
    """The built-in ignore rules for storage objects (folder placeholders, temporary uploads, a flag)."""

    placeholders: bool = True
    temporary: tuple[Glob, ...] = field(default_factory=lambda: tuple(map(glob_to_regex, DEFAULT_TEMPORARY)))
    metadata_key: str = IGNORE_METADATA_KEY


SINGLE_ROUTE_SOURCE = "DAG_ID"  # Rules.source of the one-route shortcut (no ROUTES_FILE)


@dataclass(frozen=True)
class Rules:
    """Every route, the ignore rules and the notification channels, read once at start-up."""

    routes: tuple[Route, ...]
    ignore: Ignore = field(default_factory=Ignore)
    source: str = SINGLE_ROUTE_SOURCE  # where the rules came from: the routing file's name, or DAG_ID
    notifications: Channels = NO_CHANNELS  # (bucket, topic or subscription) relaying Cloud Storage notifications

    @property
    def single(self) -> bool:
        """The ``DAG_ID`` shortcut: its one route serves ``/dags/<DAG_ID>`` webhooks without an allow list."""
        return self.source == SINGLE_ROUTE_SOURCE

    @property
    def webhook_routes(self) -> tuple[Route, ...]:
        return tuple(r for r in self.routes if r.takes_webhooks)

    def allows_dag(self, route: Route, dag_id: str) -> bool:
        """Whether a webhook at ``/dags/<dag_id>`` may trigger ``dag_id`` through ``route``."""
        return dag_id in route.allow_dags or (self.single and dag_id == route.dag_id)


class _Reader:
    """Walks the parsed document with a path, so every error says exactly where it is."""

    def __init__(self, where: str, env: Mapping[str, str]) -> None:
        self.where = where
        self.env = env

    def error(self, path: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where} → {path}: {problem}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise self.error(path, f"unknown field(s) {', '.join(map(str, unknown))}; allowed: {', '.join(allowed)}")
        return value

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) and v != "" for v in items):
            raise self.error(path, "must be a non-empty string or a list of them")
        return tuple(items)

    def integer(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(path, "must be an integer ≥ 0")
        return value

    def text_match(self, value: Any, path: str) -> TextMatch:
        if isinstance(value, (str, list)):
            return TextMatch(equals=self.strings(value, path), source=json.dumps(value))
        spec = self.mapping(value, path, ("equals", "prefix", "suffix", "glob", "regex"))
        if not spec:
            raise self.error(path, "needs at least one of equals, prefix, suffix, glob, regex")
        regexes = []
        for pattern in self.strings(spec["regex"], f"{path}.regex") if "regex" in spec else ():
            try:
                regexes.append(re.compile(pattern))
            except re.error as exc:
                raise self.error(f"{path}.regex", f"{pattern!r} is not a valid regular expression: {exc}") from None
        return TextMatch(
            equals=self.strings(spec["equals"], f"{path}.equals") if "equals" in spec else (),
            prefix=self.strings(spec["prefix"], f"{path}.prefix") if "prefix" in spec else (),
            suffix=self.strings(spec["suffix"], f"{path}.suffix") if "suffix" in spec else (),
            glob=tuple(map(glob_to_regex, self.strings(spec["glob"], f"{path}.glob"))) if "glob" in spec else (),
            regex=tuple(regexes),
            source=json.dumps(value),
        )

    def text_matches(self, value: Any, path: str) -> tuple[tuple[str, TextMatch], ...]:
        if not isinstance(value, Mapping) or not value:
            raise self.error(path, "must be a non-empty mapping of key → value or matcher")
        return tuple((str(k), self.text_match(v, f"{path}.{k}")) for k, v in value.items())

    def match(self, value: Any, path: str) -> Match:
        fields = ("kind", "event", "bucket", "name", "content_type", "size", "metadata", "attributes", "topic",
                  "path", "body", "exclude")  # fmt: skip
        spec = self.mapping(value, path, fields)
        kinds = self.strings(spec["kind"], f"{path}.kind") if "kind" in spec else ()
        bad = sorted(set(kinds) - set(KINDS))
        if bad:
            raise self.error(f"{path}.kind", f"unknown {bad}; choose from {', '.join(KINDS)}")
        actions = self.strings(spec["event"], f"{path}.event") if "event" in spec else ()
        bad = sorted(set(actions) - set(storage_events.ACTIONS))
        if bad:
            raise self.error(f"{path}.event", f"unknown {bad}; choose from {', '.join(storage_events.ACTIONS)}")
        size = self.mapping(spec.get("size", {}), f"{path}.size", ("min", "max"))
        body = spec.get("body", {})
        if not isinstance(body, Mapping):
            raise self.error(f"{path}.body", "must be a mapping of JSON field path → value or matcher")
        body_tests = tuple(
            (str(k), self.text_match(v, f"{path}.body.{k}") if isinstance(v, Mapping) else v) for k, v in body.items()
        )
        return Match(
            kinds=kinds,
            actions=actions,
            bucket=self.text_match(spec["bucket"], f"{path}.bucket") if "bucket" in spec else None,
            name=self.text_match(spec["name"], f"{path}.name") if "name" in spec else None,
            content_type=self.text_match(spec["content_type"], f"{path}.content_type")
            if "content_type" in spec
            else None,
            size_min=self.integer(size["min"], f"{path}.size.min") if "min" in size else None,
            size_max=self.integer(size["max"], f"{path}.size.max") if "max" in size else None,
            metadata=self.text_matches(spec["metadata"], f"{path}.metadata") if "metadata" in spec else (),
            attributes=self.text_matches(spec["attributes"], f"{path}.attributes") if "attributes" in spec else (),
            topic=self.text_match(spec["topic"], f"{path}.topic") if "topic" in spec else None,
            path=self.text_match(spec["path"], f"{path}.path") if "path" in spec else None,
            body=body_tests,
            exclude=self.match(spec["exclude"], f"{path}.exclude") if "exclude" in spec else None,
        )

    def route(self, value: Any, index: int) -> Route:
        fields = ("name", "dag_id", "match", "allow_dags", "marker", "conf", "conf_base", "run_id", "note",
                  "manifest", "batch", "webhook")  # fmt: skip
        raw_name = value.get("name") if isinstance(value, Mapping) else None
        label = f"route {raw_name!r}" if isinstance(raw_name, str) else f"routes[{index}]"
        spec = self.mapping(value, label, fields)
        name = spec.get("name")
        if not isinstance(name, str) or not ROUTE_NAME.fullmatch(name):
            raise self.error(f"{label}.name", "is required: letters, digits, '_', '.', '-' (at most 64)")
        dag_id = spec.get("dag_id")
        if dag_id is not None and not is_dag_id(dag_id):
            raise self.error(f"{label}.dag_id", f"{dag_id!r} is not a valid DAG id")
        allow = self.strings(spec["allow_dags"], f"{label}.allow_dags") if "allow_dags" in spec else ()
        for dag in allow:
            if not is_dag_id(dag):
                raise self.error(f"{label}.allow_dags", f"{dag!r} is not a valid DAG id")
        if dag_id is None and not allow:
            raise self.error(f"{label}.dag_id", "is required (or allow_dags, for webhooks naming /dags/<dag_id>)")
        match = self.match(spec.get("match", {}), f"{label}.match")
        conf_spec = spec.get("conf", {})
        if not isinstance(conf_spec, Mapping):
            raise self.error(f"{label}.conf", "must be a mapping of conf key → expression")
        if conf_spec or "run_id" in spec or "note" in spec:  # templates only for the routes that have some
            from .templates import Expression, TextTemplate
        conf = tuple((str(k), Expression(str(v), f"{self.where} → {label}.conf.{k}")) for k, v in conf_spec.items())
        conf_base = spec.get("conf_base", "event")
        if conf_base not in ("event", "none"):
            raise self.error(f"{label}.conf_base", "must be 'event' (start from the default conf) or 'none'")
        marker = spec.get("marker")
        if marker is not None and (not isinstance(marker, str) or not marker or "/" in marker):
            raise self.error(f"{label}.marker", "must be a file name such as _SUCCESS (no '/')")
        made = Route(
            name=name,
            dag_id=dag_id,
            match=match,
            allow_dags=allow,
            marker=marker,
            conf=conf,
            conf_base=conf_base,
            run_id=TextTemplate(str(spec["run_id"]), f"{self.where} → {label}.run_id") if "run_id" in spec else None,
            note=TextTemplate(str(spec["note"]), f"{self.where} → {label}.note") if "note" in spec else None,
            manifest=self.manifest(spec["manifest"], f"{label}.manifest", match) if "manifest" in spec else None,
            batch=self.batch(spec, label),
            webhook=self.webhook(spec["webhook"], f"{label}.webhook", dag_id, allow)
            if "webhook" in spec
            else WebhookAuth(),
        )
        if made.batch is not None and made.batch.group is None and made.webhook.scheme == "standard-webhooks":
            # The default webhook group is the path, which Standard Webhooks do not sign.
            raise self.error(f"{label}.batch.group", "is required on a standard-webhooks route (e.g. body.account)")
        return made

    def batch(self, spec: Mapping[str, Any], label: str) -> BatchSpec | None:
        if "batch" not in spec:
            return None
        if "run_id" in spec:
            raise self.error(f"{label}.run_id", "cannot be set with batch: run ids are per (route, group, window)")
        return parse_batch(spec["batch"], f"{label}.batch", self.error, self.where)

    def webhook(self, value: Any, path: str, dag_id: str | None, allow: tuple[str, ...]) -> WebhookAuth:
        from .signature import SCHEMES, standard_key_problem

        spec = self.mapping(value, path, ("scheme", "secrets"))
        scheme = spec.get("scheme", "dagtrigger-v2")
        if scheme not in SCHEMES:
            raise self.error(f"{path}.scheme", f"{scheme!r} is not one of {', '.join(SCHEMES)}")
        names = self.strings(spec["secrets"], f"{path}.secrets") if "secrets" in spec else ()
        if len(names) > 2:
            raise self.error(f"{path}.secrets", "at most two: the current secret and the one being rotated out")
        secrets = []
        for name in names:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                raise self.error(f"{path}.secrets", f"{name!r}: name environment variables mapped from Secret Manager")
            try:
                secrets.append(webhook_secret(self.env, name))
            except ConfigError as exc:
                raise self.error(f"{path}.secrets", str(exc)) from None
        if scheme == "standard-webhooks":
            # Standard Webhooks sign id.timestamp.body, not the URL: the route (and so the DAG) is bound by the
            # secret alone, so it must be the route's own and the path must not choose the DAG.
            if not secrets:
                raise self.error(f"{path}.secrets", "standard-webhooks needs the route's own secret(s)")
            if dag_id is None or allow:
                raise self.error(f"{path}.scheme", "standard-webhooks needs a fixed dag_id (no allow_dags)")
            for name, secret in zip(names, secrets, strict=True):
                problem = standard_key_problem(secret)
                if problem:
                    raise self.error(f"{path}.secrets", f"{name}: {problem}")
        return WebhookAuth(scheme=scheme, secrets=tuple(secrets))

    def manifest(self, value: Any, path: str, match: Match) -> Manifest:
        from .templates import Expression

        spec = self.mapping(value, path, ("object", "bucket", "buckets", "into", "max_bytes"))
        if "object" not in spec:
            raise self.error(f"{path}.object", "is required: an expression giving the object name")
        if "buckets" not in spec and (match.bucket is None or not match.bucket.equals):
            # The function reads with its own credentials: never from a bucket an event names.
            raise self.error(
                f"{path}.buckets",
                "is required unless match.bucket names the bucket(s) exactly: the buckets manifests may be read from",
            )
        into = spec.get("into", "manifest")
        if not isinstance(into, str) or not into:
            raise self.error(f"{path}.into", "must be a conf key")
        return Manifest(
            object=Expression(str(spec["object"]), f"{self.where} → {path}.object"),
            bucket=Expression(str(spec["bucket"]), f"{self.where} → {path}.bucket") if "bucket" in spec else None,
            into=into,
            max_bytes=self.integer(spec.get("max_bytes", MANIFEST_MAX_BYTES), f"{path}.max_bytes"),
            buckets=self.buckets(spec["buckets"], f"{path}.buckets") if "buckets" in spec else (),
        )

    def buckets(self, value: Any, path: str) -> tuple[str, ...]:
        names = self.strings(value, path)
        for name in names:
            problem = bucket_problem(name)
            if problem:
                raise self.error(path, problem)
        return names

    def notifications(self, value: Any, routes: list[Route]) -> Channels:
        """``notifications: {bucket: channel or [channels]}``: where each route-named bucket's notifications come
        from through Pub/Sub (``projects/P/topics/T`` for Eventarc, ``projects/P/subscriptions/S`` for push)."""
        if not isinstance(value, Mapping) or not value:
            raise self.error("notifications", "must be a mapping of bucket → topic or push subscription (or a list)")
        named = {b for r in routes for b in r.named_buckets}
        pairs = set()
        for bucket, channels in value.items():
            path = f"notifications.{bucket}"
            if bucket not in named:
                raise self.error(path, "no route names this bucket in match.bucket: its notifications would route "
                                 "nowhere, or anywhere an event says")  # fmt: skip
            for channel in self.strings(channels, path):
                if not CHANNEL.fullmatch(channel):
                    raise self.error(path, f"{channel!r} is not projects/P/topics/T or projects/P/subscriptions/S")
                pairs.add((str(bucket), channel))
        return frozenset(pairs)

    def ignore(self, value: Any) -> Ignore:
        spec = self.mapping(value, "ignore", ("placeholders", "temporary", "metadata_key"))
        placeholders = spec.get("placeholders", True)
        if not isinstance(placeholders, bool):
            raise self.error("ignore.placeholders", "must be true or false")
        temporary: tuple[Glob, ...] = Ignore().temporary
        if "temporary" in spec:
            raw = spec["temporary"]
            temporary = (
                () if raw in (False, [], None) else tuple(map(glob_to_regex, self.strings(raw, "ignore.temporary")))
            )
        key = spec.get("metadata_key", IGNORE_METADATA_KEY)
        if not isinstance(key, str) or not key:
            raise self.error("ignore.metadata_key", "must be a metadata key")
        return Ignore(placeholders=placeholders, temporary=temporary, metadata_key=key)


def parse_rules(document: Any, where: str, env: Mapping[str, str] | None = None) -> Rules:
    """Validate a parsed routing document (see docs/routing.md); route secrets are read from ``env``."""
    reader = _Reader(where, os.environ if env is None else env)
    spec = reader.mapping(document, "(top level)", ("routes", "ignore", "notifications"))
    raw_routes = spec.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise reader.error("routes", "must be a non-empty list of routes")
    routes = [reader.route(r, i) for i, r in enumerate(raw_routes)]
    names = [r.name for r in routes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise reader.error("routes", f"route names must be unique: {', '.join(duplicates)}")
    standard = [(r.name, s) for r in routes if r.webhook.scheme == "standard-webhooks" for s in r.webhook.secrets]
    for i, (name, secret) in enumerate(standard):
        other = next((n for n, s in standard[i + 1 :] if s == secret and n != name), None)
        if other is not None:
            raise reader.error(f"route {other!r}.webhook.secrets", f"shares a standard-webhooks secret with {name!r}")
    dags = [r.dag_id for r in routes if r.dag_id]
    shared = {d for d in dags if dags.count(d) > 1}
    routes = [Route(**{**r.__dict__, "shares_dag": r.dag_id in shared}) for r in routes]
    channels = reader.notifications(spec["notifications"], routes) if "notifications" in spec else NO_CHANNELS
    return Rules(tuple(routes), reader.ignore(spec.get("ignore", {})), where, channels)


def load_rules(path: str, env: Mapping[str, str] | None = None) -> Rules:
    """Read ROUTES_FILE (``.yaml``/``.yml`` or ``.json``); relative paths are from the function's source folder."""
    file = Path(path)
    where = f"ROUTES_FILE {path}"
    if not file.is_absolute():
        file = Path(__file__).resolve().parents[1] / file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it ({exc.strerror}); ship it with the function source") from None
    try:
        if file.suffix in (".yaml", ".yml"):
            import yaml

            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"{where}: not valid {file.suffix.lstrip('.') or 'JSON'}: {exc}") from None
    return parse_rules(document, where, env)


def single_route(dag_id: str, actions: frozenset[str]) -> Rules:
    """The ``DAG_ID`` shortcut: every storage action in STORAGE_EVENT_TYPES, every message and webhook."""
    match = Match(actions=tuple(sorted(actions)))
    return Rules((Route(name="default", dag_id=dag_id, match=match),), source=SINGLE_ROUTE_SOURCE)
