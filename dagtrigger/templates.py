"""Conf, run-id and note templates: JMESPath expressions plus a few path and date helpers. No eval, no Jinja.

JMESPath (a well-kept, side-effect-free query language) evaluates against a plain JSON *context* built from the
event, so an event's content can only ever be data, never code. Expressions are compiled once at start-up.

Extra functions: ``dirname(s)``, ``basename(s)``, ``stem(s)``, ``extension(s)``, ``gcs_uri(bucket, name)``,
``regex_group(s, pattern, n)`` (``null`` when no match), ``path_date(s)`` (the date of ``dt=2026-11-24`` or
``2026/11/24`` or ``2026-11-24`` in a path), ``lower(s)``, ``upper(s)``, ``replace(s, old, new)``, ``split(s, sep)``,
``concat(a, b, …)``, ``now()`` is deliberately absent (conf must be a function of the event).
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from typing import Any

from .exceptions import ConfigError, TemplateError

_MAX_REGEX_INPUT = 4096
_DATE_PATTERNS = (
    re.compile(r"(?:^|[/_=-])(?:dt|date|ds|day)=(\d{4})-?(\d{2})-?(\d{2})(?:$|[/_.-])"),
    re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})(?:$|/)"),
    re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"),
)


@functools.lru_cache(maxsize=256)
def _compiled_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@functools.lru_cache(maxsize=1)
def _jmespath() -> tuple[Any, Any, Any]:
    """jmespath, its error type and the options with our functions, imported on first use.

    Only routes with templates need it, so the one-route DAG_ID shortcut does not pay the import at cold start.
    """
    import jmespath
    import jmespath.exceptions
    from jmespath import functions

    class _Functions(functions.Functions):
        @functions.signature({"types": ["string"]})
        def _func_dirname(self, s: str) -> str:
            return s.rpartition("/")[0]

        @functions.signature({"types": ["string"]})
        def _func_basename(self, s: str) -> str:
            return s.rpartition("/")[2]

        @functions.signature({"types": ["string"]})
        def _func_stem(self, s: str) -> str:
            base = s.rpartition("/")[2]
            return base.rpartition(".")[0] if "." in base.lstrip(".") else base

        @functions.signature({"types": ["string"]})
        def _func_extension(self, s: str) -> str:
            base = s.rpartition("/")[2]
            return base.rpartition(".")[2] if "." in base.lstrip(".") else ""

        @functions.signature({"types": ["string"]}, {"types": ["string"]})
        def _func_gcs_uri(self, bucket: str, name: str) -> str:
            return f"gs://{bucket}/{name}"

        @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["number"]})
        def _func_regex_group(self, s: str, pattern: str, group: float) -> str | None:
            match = _compiled_regex(pattern).search(s[:_MAX_REGEX_INPUT])
            if match is None:
                return None
            try:
                return match.group(int(group))
            except IndexError:
                return None

        @functions.signature({"types": ["string"]})
        def _func_path_date(self, s: str) -> str | None:
            for pattern in _DATE_PATTERNS:
                match = pattern.search(s[:_MAX_REGEX_INPUT])
                if match:
                    return "-".join(match.groups())
            return None

        @functions.signature({"types": ["string"]})
        def _func_lower(self, s: str) -> str:
            return s.lower()

        @functions.signature({"types": ["string"]})
        def _func_upper(self, s: str) -> str:
            return s.upper()

        @functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
        def _func_replace(self, s: str, old: str, new: str) -> str:
            return s.replace(old, new)

        @functions.signature({"types": ["string"]}, {"types": ["string"]})
        def _func_split(self, s: str, sep: str) -> list[str]:
            return s.split(sep) if sep else list(s)

        @functions.signature({"types": ["string", "number", "null"], "variadic": True})
        def _func_concat(self, *parts: Any) -> str:
            return "".join(
                "" if p is None else (str(int(p)) if isinstance(p, float) and p.is_integer() else str(p)) for p in parts
            )

    return jmespath, jmespath.exceptions.JMESPathError, jmespath.Options(custom_functions=_Functions())


class Expression:
    """A compiled JMESPath expression; compile errors become ConfigError naming where the expression came from."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        jmespath, error, _ = _jmespath()
        try:
            self._parsed = jmespath.compile(source)
        except error as exc:
            raise ConfigError(f"{where}: {source!r} is not a valid expression: {exc}") from None
        for name in re.findall(r"regex_group\([^,]+,\s*'((?:[^'\\]|\\.)*)'", source):
            try:
                _compiled_regex(name.replace("\\'", "'"))
            except re.error as exc:
                raise ConfigError(f"{where}: bad regular expression {name!r}: {exc}") from None

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        """The value, or raises TemplateError (the event lacks what the expression needs in a way it cannot absorb)."""
        _, error, options = _jmespath()
        try:
            return self._parsed.search(context, options=options)
        except error as exc:
            raise TemplateError(f"{self.where}: {self.source!r} failed on this event: {exc}") from None


class TextTemplate:
    """``"orders__{date}__{table}"``: placeholders name keys of the rendered conf (and ``default``)."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where
        try:
            self.fields = tuple(f for _, f, _, _ in string.Formatter().parse(source) if f is not None)
        except ValueError as exc:
            raise ConfigError(f"{where}: {source!r} is not a valid template: {exc}") from None
        for field in self.fields:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
                raise ConfigError(f"{where}: placeholder {{{field}}} must be a plain conf key (no dots or brackets)")

    def render(self, values: Mapping[str, Any]) -> str:
        missing = [f for f in self.fields if values.get(f) in (None, "")]
        if missing:
            raise TemplateError(f"{self.where}: {', '.join(missing)} empty for this event")
        return self.source.format_map({f: _as_text(values[f]) for f in self.fields})


def _as_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
