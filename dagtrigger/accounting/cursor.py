"""Where a sweep stopped when its time budget ran out: one JSON object next to the dead letters
(``<DEAD_LETTER_URI>/_sweep/<name>.json``, outside the day folders the dead-letter store lists), read by the next
sweep to continue the same interval from the same listing and object name."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..deadletter import parse_uri
from ..gcs import default_retry
from ..run_id import squash

FOLDER = "_sweep"


@dataclass(frozen=True)
class Cursor:
    """The interval being swept, the listings finished, and the last object name done in the current one."""

    since: str
    until: str
    done: tuple[str, ...]
    listing: str
    after: str

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Cursor:
        return cls(
            since=str(value["since"]),
            until=str(value["until"]),
            done=tuple(str(k) for k in value.get("done", ())),
            listing=str(value.get("listing", "")),
            after=str(value.get("after", "")),
        )


class CursorStore:
    """One cursor per sweep scope (all routes, or one ``--route``); ``calls`` counts each storage request."""

    def __init__(self, dead_letter_uri: str, scope: str, storage: Any, on_call: Any) -> None:
        self.bucket, prefix = parse_uri(dead_letter_uri)
        head = f"{prefix}/" if prefix else ""
        self.name = f"{head}{FOLDER}/{squash(scope, 64)}.json"
        self.storage = storage
        self.on_call = on_call

    @property
    def uri(self) -> str:
        return f"gs://{self.bucket}/{self.name}"

    def read(self) -> Cursor | None:
        self.on_call()
        blob = self.storage.bucket(self.bucket).get_blob(self.name, retry=default_retry())
        if blob is None:
            return None
        self.on_call()
        try:
            return Cursor.from_json(json.loads(blob.download_as_bytes(retry=default_retry())))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: start afresh rather than stop every future sweep

    def write(self, cursor: Cursor) -> None:
        self.on_call()
        blob = self.storage.bucket(self.bucket).blob(self.name)
        blob.upload_from_string(json.dumps(asdict(cursor), ensure_ascii=False), content_type="application/json")

    def clear(self) -> None:
        from google.api_core import exceptions as gexc

        self.on_call()
        try:
            self.storage.bucket(self.bucket).blob(self.name).delete(retry=default_retry())
        except gexc.NotFound:
            pass
