"""Structured logs: one JSON object per line with ``severity`` and ``message`` (Cloud Logging reads them).

Every line about an event carries its event id, DAG id, run id and outcome, so one event can be followed end to end.
Every line passes through ``redaction.redact`` (the one masking for logs, answers, dead letters and ``check``), and
is printable: ``json.dumps`` escapes only C0 controls, so whatever else is not printable (DEL, C1 controls such as
U+0085 NEL and U+009B CSI, the line separators U+2028 / U+2029, bidi overrides) is written as a ``\\uXXXX`` escape
too. An event's text can then neither start a new line for a reader that splits on those, nor reach a terminal raw.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from .redaction import redact, remember

LOGGER_NAME = "dagtrigger"
_FIELDS = ("event_id", "event_type", "dag_id", "run_id", "outcome", "status", "api_version", "route", "attempt")


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        for secret in secrets:
            remember(secret)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"severity": record.levelname, "message": record.getMessage()}
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        details = getattr(record, "details", None)
        if isinstance(details, dict):
            entry.update({k: v for k, v in details.items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_printable(redact(json.dumps(entry, ensure_ascii=False, default=str)))


def json_printable(text: str) -> str:
    """JSON text with every non-printable character (other than the space) written as a JSON ``\\u`` escape.

    Only valid on JSON text whose non-ASCII characters all sit inside strings, as ``json.dumps`` writes it; the
    result decodes to the same value."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def configure(level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None) -> logging.Logger:
    """Idempotent: one handler (stdout unless told) on the package logger, replacing any earlier one."""
    logger = get_logger()
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(secrets))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger
