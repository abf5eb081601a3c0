"""A fake Airflow for load and fault runs: answers the trigger call like Airflow (200, then 409 for a known run id)
and injects one switchable fault at a time, so a scenario can say "503 storm from now on … and now recovered".

It is a fake, not Airflow: it keeps runs in a dict and checks nothing but the run id (and, when asked, the bearer
token). What it proves is how the function and its client behave around Airflow's answers, not Airflow itself.
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from devtools.fakes import Answer, FakeServer, Seen, ServedFake, runs_answer

# A conf whose metadata holds this key is refused (400), as Airflow refuses a bad request: a poison event.
REFUSE_MARKER = "dagtrigger-load-refuse"
HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>{status} {title}</title></head><body><h1>{title}</h1>"
    "<p>The server encountered a temporary error and could not complete your request.</p>"
    "<p>Please try again in 30 seconds.</p></body></html>"
)


class FaultKind(Enum):
    STATUS = "status"  # answer ``status`` (JSON body), optionally with Retry-After; nothing is created
    HTML = "html"  # answer ``status`` with an HTML error page (a proxy's or Airflow 2's), nothing is created
    HANG = "hang"  # create the run, then answer only after ``delay_s`` (past the client's read timeout)
    RESET_BEFORE = "reset-before"  # read the request, create nothing, abort the connection (TCP RST)
    RESET_AFTER = "reset-after"  # read the request, create the run, abort the connection before answering


@dataclass(frozen=True)
class Fault:
    """One fault mode. ``first_attempts``: hit only the first N POSTs of each run id (None: every POST);
    ``share``: the fraction of run ids hit, chosen by a hash of the run id so a redelivery is hit alike."""

    kind: FaultKind
    status: int = 503
    retry_after: str | None = None
    delay_s: float = 0.0
    first_attempts: int | None = None
    share: float = 1.0

    def hits(self, run_id: str, attempt: int) -> bool:
        if self.first_attempts is not None and attempt > self.first_attempts:
            return False
        return self.share >= 1.0 or (zlib.crc32(run_id.encode()) % 10_000) < self.share * 10_000


@dataclass(frozen=True)
class CreatedRun:
    dag_id: str
    run_id: str
    conf: dict[str, Any]


def _html(status: int, title: str) -> str:
    return HTML_PAGE.format(status=status, title=title)


class FaultyAirflow(ServedFake):
    """A threaded fake Airflow (API v2 or v1) on 127.0.0.1 with a switchable ``fault`` (None: healthy).

    ``required_token_prefix``: answer 401 to a trigger call whose ``Authorization`` is not ``Bearer <prefix>…``
    (checks that a google-auth token really reached the wire). Counters say what was injected and answered.
    """

    def __init__(self, version: str = "v2", required_token_prefix: str | None = None) -> None:
        self.version = version
        self.required_token_prefix = required_token_prefix
        self.fault: Fault | None = None
        self.runs: dict[tuple[str, str], CreatedRun] = {}
        self.attempts: Counter[str] = Counter()  # POSTs per run id
        self.answers: Counter[str] = Counter()  # "200", "409", "503", "hang", "reset-after", …
        self._lock = threading.Lock()
        self.server = FakeServer(self._answer)

    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self.fault = fault

    def created(self) -> list[CreatedRun]:
        with self._lock:
            return list(self.runs.values())

    def _count(self, what: str) -> None:
        with self._lock:
            self.answers[what] += 1

    def _answer(self, seen: Seen) -> Answer:
        path = urlsplit(seen.path).path
        if path.endswith("/version"):
            ok = path.startswith(f"/api/{self.version}/")
            return Answer(200, {"version": "fake"}) if ok else Answer(404, {"detail": "Not Found"})
        parts = path.split("/")
        if seen.method == "GET" and "dagRuns" in parts:  # a run read (after a 409), or a page of runs (sweep)
            self._count("read" if parts[-2] == "dagRuns" else "list")
            answer = runs_answer(seen, self.runs, self._lock)
            assert answer is not None
            return answer
        if not (seen.method == "POST" and path.endswith("/dagRuns")):
            return Answer(404, {"detail": "Not Found"})
        if self.required_token_prefix is not None:
            header = seen.headers.get("Authorization", "")
            if not header.startswith(f"Bearer {self.required_token_prefix}"):
                self._count("401")
                return Answer(401, {"detail": "Not authenticated"})
        dag_id = path.split("/")[-2]
        body = seen.json()
        run_id = str(body["dag_run_id"])
        conf = body.get("conf") or {}
        with self._lock:
            self.attempts[run_id] += 1
            attempt = self.attempts[run_id]
            fault = self.fault
        if isinstance(conf.get("metadata"), dict) and REFUSE_MARKER in conf["metadata"]:
            html = fault is not None and fault.kind is FaultKind.HTML
            self._count("400")
            detail = "conf refused on purpose (a poison event)"
            return Answer(400, _html(400, "Bad Request") if html else {"detail": detail})
        if fault is not None and fault.hits(run_id, attempt):
            if fault.kind is FaultKind.STATUS:
                self._count(str(fault.status))
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return Answer(fault.status, {"detail": "fault injected", "status": fault.status}, headers)
            if fault.kind is FaultKind.HTML:
                self._count(f"{fault.status}-html")
                return Answer(fault.status, _html(fault.status, "Server Error"))
            if fault.kind is FaultKind.RESET_BEFORE:
                self._count("reset-before")
                return Answer(reset=True)
        status = self._create(dag_id, run_id, conf)
        if fault is not None and fault.hits(run_id, attempt):
            if fault.kind is FaultKind.HANG:
                self._count(f"hang-{status}")
                return Answer(status, {"dag_run_id": run_id, "state": "queued"}, delay_s=fault.delay_s)
            if fault.kind is FaultKind.RESET_AFTER:
                self._count(f"reset-after-{status}")
                return Answer(reset=True)
        self._count(str(status))
        if status == 409:
            return Answer(409, {"detail": f"DAG run {run_id!r} already exists"})
        return Answer(200, {"dag_run_id": run_id, "dag_id": dag_id, "state": "queued", "conf": conf})

    def _create(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> int:
        """200 and remember the run, or 409 when the run id exists: atomically, as Airflow's unique key does."""
        with self._lock:
            if (dag_id, run_id) in self.runs:
                return 409
            self.runs[(dag_id, run_id)] = CreatedRun(dag_id, run_id, conf)
            return 200
