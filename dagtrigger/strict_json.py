"""JSON as Airflow can take it, parsed strictly: a sender's malformed JSON is its mistake (400), never a retry.

Python's json accepts NaN and 1e999 (which Airflow's JSON then refuses, so the event would be retried forever) and
recurses once per nesting level; both are refused here, with the reason, as BadEvent.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .exceptions import BadEvent

MAX_JSON_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} overflows")
    return value


def _depth(text: str) -> int:
    """Deepest nesting of arrays/objects outside strings, counted without recursion (json recurses per level)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes | str, what: str) -> Any:
    """Strict JSON: UTF-8, nesting ≤ MAX_JSON_DEPTH, no NaN/Infinity, no number that overflows a float.

    Python's json accepts NaN and 1e999 (which Airflow's JSON then refuses, so the event would be retried forever)
    and recurses once per nesting level; all of these are the sender's mistake: BadEvent(400), never a retry."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if _depth(text) > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadEvent(f"{what} is not valid JSON: {str(exc)[:200]}") from None


def check_json_value(data: Any, what: str) -> None:
    """Data parsed by someone else (the CloudEvents SDK) must still be JSON Airflow can take."""
    try:
        json.dumps(data, allow_nan=False)
    except (ValueError, TypeError, RecursionError) as exc:
        raise BadEvent(f"{what} is not valid JSON: {str(exc)[:200]}") from None
