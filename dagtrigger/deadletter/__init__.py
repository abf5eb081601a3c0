"""Dead letters: permanent failures kept as one JSON object per (DAG, run id) in Cloud Storage, read back for replay.

An event that failed for good is acknowledged only after its dead letter is written, keeping the request as it
arrived (the event's ``Delivery``, see delivery.py) for replay. By concern:
``record`` (the record and its pure rules),
``naming`` (the setting and object names), ``store`` (Cloud Storage; the only module doing I/O).
"""

from __future__ import annotations

from ..exceptions import BadDeadLetter, DeadLetterError, DeadLetterReadError, DeadLetterWriteError
from ..redaction import redact
from .naming import ENV_VAR, EXAMPLE_URI, LOOKBACK_DAYS, NameParts, candidate_days, object_name, parse_name, parse_uri
from .record import (
    VERSION,
    DeadLetter,
    check_outcome,
    event_from_record,
    is_replayed,
    matches,
    merge,
    new_record,
    utc_iso,
    with_replay,
)
from .store import DeadLetterStore

__all__ = [
    "ENV_VAR",
    "EXAMPLE_URI",
    "LOOKBACK_DAYS",
    "VERSION",
    "BadDeadLetter",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterReadError",
    "DeadLetterStore",
    "DeadLetterWriteError",
    "NameParts",
    "candidate_days",
    "check_outcome",
    "event_from_record",
    "is_replayed",
    "matches",
    "merge",
    "new_record",
    "object_name",
    "parse_name",
    "parse_uri",
    "redact",
    "utc_iso",
    "with_replay",
]
