"""Fakes for fault injection and auth checks — named as what they are: small local servers, not Airflow.

Shared by tests, bench/ and the load harness (so it lives outside tests/).

Each binds 127.0.0.1 on a free port, sets TCP_NODELAY and writes each answer in one piece (a server that writes
headers and body separately stalls ~40 ms per call on delayed ACK), and records every request it saw.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: tuple[str, int] = ("", 0)  # the client's address: one per TCP connection, so reuse shows

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without answering (a reset as the client sees it)
    reset: bool = False  # abort the connection with a TCP RST (SO_LINGER 0): ConnectionResetError for the client

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, (dict, list)):
            return json.dumps(self.body).encode(), "application/json"
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=utf-8"
        return self.body, "application/octet-stream"


Handler = Callable[[Seen], Answer]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timed out, closed) while we were late is part of the test, not a server error."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeServer:
    """A threaded HTTP server on 127.0.0.1 whose answers come from ``handler(seen)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class _RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body, self.client_address)
                with outer._lock:
                    outer.seen.append(seen)
                answer = outer.handler(seen)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.drop:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer.reset:
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    return
                payload, content_type = answer.encoded()
                head = [f"HTTP/1.1 {answer.status} X", f"Content-Length: {len(payload)}"]
                headers = {"Content-Type": content_type, **answer.headers}
                head += [f"{k}: {v}" for k, v in headers.items()]
                self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
                self.wfile.flush()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", 0), _RequestHandler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests_to(self, fragment: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if fragment in s.path]


class ServedFake:
    """A fake built on a FakeServer: usable as a context manager, with the server's URL."""

    server: FakeServer

    def __enter__(self) -> Self:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    @property
    def url(self) -> str:
        return self.server.url


def runs_answer(seen: Seen, runs: dict[tuple[str, str], Any], lock: threading.Lock) -> Answer | None:
    """GET …/dags/<dag>/dagRuns (a page: ``limit``, ``offset``, ordered by creation) or …/dagRuns/<run id> as
    Airflow answers them, from ``runs`` keyed by (DAG id, run id) in creation order; None for any other request.
    The time filters (``updated_at_gte``) are not applied: every run is recent here."""
    if seen.method != "GET" or "/dagRuns" not in seen.path:
        return None
    parts = urlsplit(seen.path)
    segments = parts.path.split("/")
    at = segments.index("dagRuns")
    dag_id = segments[at - 1]
    if at + 1 < len(segments) and segments[at + 1]:
        run_id = unquote(segments[at + 1])
        with lock:
            run = runs.get((dag_id, run_id))
        if run is None:
            return Answer(404, {"detail": "DAGRun not found"})
        state = run.get("state", "queued") if isinstance(run, dict) else "queued"
        return Answer(200, {"dag_run_id": run_id, "dag_id": dag_id, "state": state})
    query = parse_qs(parts.query)
    limit = min(int(query.get("limit", ["100"])[0]), 100)
    offset = int(query.get("offset", ["0"])[0])
    with lock:
        ids = [run_id for (dag, run_id) in runs if dag == dag_id]
    page = [{"dag_run_id": r, "dag_id": dag_id, "state": "queued"} for r in ids[offset : offset + limit]]
    return Answer(200, {"dag_runs": page, "total_entries": len(ids)})


class FakeAirflow(ServedFake):
    """Answers the trigger call like Airflow does (200, then 409 for a known run id), reads one run back (GET), and
    has a scriptable fault queue for trigger calls.

    API v1 keeps logical dates unique per DAG, as Airflow 2 does: a run posted without one gets ``undated_logical_date``
    (Airflow's now(); None: a fresh one each time, so undated runs never collide), and a POST whose logical date
    another run holds gets 409. A fixed ``undated_logical_date`` makes every undated trigger happen in one instant.
    """

    def __init__(self, version: str = "v2", undated_logical_date: str | None = None) -> None:
        self.version = version
        self.undated_logical_date = undated_logical_date
        self.runs: dict[tuple[str, str], dict[str, Any]] = {}
        self.faults: list[Answer] = []
        self.missing_dags: set[str] = set()  # POSTs to these DAGs answer 404 (an event that ends as a dead letter)
        self._lock = threading.Lock()
        self.server = FakeServer(self._answer)

    def _answer(self, seen: Seen) -> Answer:
        path = urlsplit(seen.path).path
        with self._lock:
            if self.faults and path.endswith("/dagRuns"):
                return self.faults.pop(0)
        if path.endswith("/version"):
            ok = path.startswith(f"/api/{self.version}/")
            return Answer(200, {"version": "fake"}) if ok else Answer(404, {"detail": "Not Found"})
        listed = runs_answer(seen, self.runs, self._lock)
        if listed is not None:
            return listed
        parts = path.split("/")
        if seen.method == "POST" and path.endswith("/dagRuns") and parts[-2] in self.missing_dags:
            return Answer(404, {"detail": f"DAG {parts[-2]} not found"})
        if seen.method == "POST" and path.endswith("/dagRuns"):
            return self._create(parts[-2], seen.json())
        return Answer(404, {"detail": "Not Found"})

    def _create(self, dag_id: str, body: dict[str, Any]) -> Answer:
        key = (dag_id, body["dag_run_id"])
        with self._lock:
            if key in self.runs:
                return Answer(409, {"detail": "already exists"})
            if self.version == "v1":
                date = body.get("logical_date") or self.undated_logical_date
                taken = {r.get("logical_date") for (dag, _), r in self.runs.items() if dag == dag_id}
                if date is not None and date in taken:
                    return Answer(409, {"detail": f"DAGRun with DAG ID: '{dag_id}' and this logical date exists"})
                if date is not None:
                    body = {**body, "logical_date": date}
            self.runs[key] = body
        return Answer(200, {"dag_run_id": body["dag_run_id"], "state": "queued"})


class FakeMetadataServer(ServedFake):
    """The GCE metadata server as google-auth talks to it (``GCE_METADATA_HOST``): identity and tokens."""

    def __init__(self, email: str = "dagtrigger@example-project.iam.gserviceaccount.com", lifetime_s: int = 3600):
        self.email = email
        self.lifetime_s = lifetime_s
        self.fail_tokens = False
        self.refused_tokens = 0
        self.token_fetches = 0
        self.id_token_fetches = 0
        self._lock = threading.Lock()
        self.server = FakeServer(self._answer)

    def token(self, n: int) -> str:
        return f"ya29.fake-access-token-{n:04d}-{'x' * 40}"

    def _answer(self, seen: Seen) -> Answer:
        flavor = {"Metadata-Flavor": "Google"}
        parts = urlsplit(seen.path)
        path = parts.path
        if path in ("", "/"):
            return Answer(200, "", flavor)
        if path.endswith("/project/project-id"):
            return Answer(200, b"example-project", {**flavor, "Content-Type": "text/plain"})
        if path.endswith("/universe/universe-domain"):
            return Answer(200, b"googleapis.com", {**flavor, "Content-Type": "text/plain"})
        if "/service-accounts/" in path and path.endswith("/token"):
            if self.fail_tokens:
                with self._lock:
                    self.refused_tokens += 1
                return Answer(500, b"metadata server is failing on purpose", {**flavor, "Content-Type": "text/plain"})
            with self._lock:
                self.token_fetches += 1
                n = self.token_fetches
            body = {"access_token": self.token(n), "expires_in": self.lifetime_s, "token_type": "Bearer"}
            return Answer(200, body, flavor)
        if "/service-accounts/" in path and path.endswith("/identity"):
            audience = parse_qs(parts.query).get("audience", [""])[0]
            with self._lock:
                self.id_token_fetches += 1
            return Answer(200, _fake_id_token(audience, self.email).encode(), {**flavor, "Content-Type": "text/plain"})
        if "/service-accounts/" in path:
            body = {"email": self.email, "scopes": ["https://www.googleapis.com/auth/cloud-platform"], "aliases": []}
            return Answer(200, body, flavor)
        return Answer(404, b"not found", {**flavor, "Content-Type": "text/plain"})

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def env(self) -> dict[str, str]:
        """What a process needs so google-auth talks to this server and nothing else."""
        return {
            "GCE_METADATA_HOST": self.host,
            "GCE_METADATA_IP": self.host,
            "GCE_METADATA_TIMEOUT": "1",
            "GCE_METADATA_DETECT_RETRIES": "1",
        }


def _fake_id_token(audience: str, email: str) -> str:
    import base64

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"aud": audience, "email": email, "iat": now, "exp": now + 3600, "iss": "https://accounts.google.com"}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"
