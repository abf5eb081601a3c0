"""Structured logs: one JSON object per line with ``severity`` and ``message`` (Cloud Logging reads them).

Every line about an event carries its event id, DAG id, run id and outcome, so one event can be followed end to end.
A last line of defence masks bearer tokens, basic credentials and configured secrets wherever they would appear.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

LOGGER_NAME = "dagtrigger"
_FIELDS = ("event_id", "event_type", "dag_id", "run_id", "outcome", "status", "api_version", "route", "attempt")
_CREDENTIALS = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if len(s) >= 4)

    def redact(self, text: str) -> str:
        text = _CREDENTIALS.sub(lambda m: f"{m.group(1)} ***", text)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

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
        return self.redact(json.dumps(entry, ensure_ascii=False, default=str))


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
