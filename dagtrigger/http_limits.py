"""Limits on the head of a request (its request line and headers), which gunicorn reads before any code of ours runs.

functions-framework starts gunicorn with ``limit_request_line: 0`` (no limit), and gunicorn's Python parser copies
and searches the whole buffered line on each read: the cost grows with the square of the line's length (a 40 MB URL
cost 42 s of CPU). No event this function accepts needs a long line (Eventarc and Pub/Sub post to ``/``, webhook
paths are short), so the line gets gunicorn's own maximum back, and the header limits are pinned to gunicorn's
defaults so that a change of functions-framework cannot lift them silently. Over a limit, gunicorn answers 400.

functions-framework offers no setting for this, and ``main.py`` is imported before it builds its gunicorn
application, so ``install()`` (called from ``main.py``) extends that application's configuration step.

The same step turns off gunicorn's control socket (gunicorn 24 and later): an asyncio server on a Unix socket for the
``gunicornc`` tool, which nothing on Cloud Run uses, started in the master right after it forks the worker, so its
start-up (~40 ms of CPU importing asyncio) ran while a cold start's first event was served.

And it bounds the time a request may take to arrive. gunicorn's threaded worker reads the head with a blocking socket
and no timeout, before any code of ours runs, so senders that stall or trickle a byte at a time held every thread
(issue 16, finding 6). ``deadline_worker`` gives each head ``HEAD_READ_TIMEOUT_S`` and each body
``BODY_READ_TIMEOUT_S`` in total (not per read): a late head gets a 408 with the reason and the connection is closed;
a late body raises ``TimeoutError`` in whoever reads it (our entry points answer 408).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any, NoReturn

from .clock import SYSTEM_CLOCK
from .logs import get_logger
from .settings import BODY_READ_TIMEOUT_S, HEAD_READ_TIMEOUT_S

MAX_REQUEST_LINE = 8190  # bytes of method, target and version: gunicorn's default and largest finite value
MAX_HEADER_FIELD = 8190  # bytes of one header line: gunicorn's default
MAX_HEADER_FIELDS = 100  # header lines: gunicorn's default

LIMITS = {
    "limit_request_line": MAX_REQUEST_LINE,
    "limit_request_field_size": MAX_HEADER_FIELD,
    "limit_request_fields": MAX_HEADER_FIELDS,
}

OFF = {"control_socket_disable": True}  # applied only where this gunicorn has the setting


def install() -> bool:
    """Make functions-framework's gunicorn application apply ``LIMITS`` after its own settings; idempotent.

    Returns False where there is no such application to extend (gunicorn not installed, as on Windows, where
    functions-framework serves with Flask's development server instead).
    """
    try:
        from functions_framework._http import gunicorn as ff_gunicorn
        from gunicorn.workers.gthread import ThreadWorker
        from gunicorn.workers.sync import SyncWorker
    except ImportError:
        return False
    application = ff_gunicorn.GunicornApplication
    if getattr(application.load_config, "_dagtrigger_limits", False):
        return True
    original: Callable[[Any], None] = application.load_config

    def load_config(self: Any) -> None:
        original(self)
        for name, value in LIMITS.items():
            self.cfg.set(name, value)
        for name, value in OFF.items():
            if name in self.cfg.settings:
                self.cfg.set(name, value)
        worker = self.cfg.worker_class  # resolved: gunicorn's threaded worker when THREADS > 1, else its sync one
        if worker is SyncWorker:  # THREADS=1 (deploy's --concurrency 1): one thread of the threaded worker instead
            worker = ThreadWorker
        if issubclass(worker, ThreadWorker):
            self.cfg.set("worker_class", deadline_worker(worker))

    load_config._dagtrigger_limits = True  # type: ignore[attr-defined]
    application.load_config = load_config  # type: ignore[method-assign]
    return True


HEAD_TIMEOUT_REASON = f"the request head did not arrive within {HEAD_READ_TIMEOUT_S:g} s"
BODY_TIMEOUT_REASON = f"the request body did not arrive within {BODY_READ_TIMEOUT_S:g} s"


def head_timeout_answer() -> bytes:
    """A 408 with the reason in the JSON shape of every rejection; written straight to the socket, as gunicorn
    answers what it refuses itself."""
    body = json.dumps({"outcome": "rejected", "error": HEAD_TIMEOUT_REASON}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


@cache
def deadline_worker(base: type) -> type:
    """``base`` (gunicorn's ThreadWorker or a subclass) whose connections read each head and body against a deadline.

    The parser's socket reader is swapped for one that sets the socket's timeout to what is left of the deadline
    before each read: a per-read timeout alone never trips for a byte a second."""
    from gunicorn.http.errors import NoMoreData
    from gunicorn.http.unreader import SocketUnreader

    class DeadlineReader(SocketUnreader):  # type: ignore[misc]
        deadline: float | None = None
        in_body = False

        def arm(self, in_body: bool, seconds: float) -> None:
            self.in_body, self.deadline = in_body, SYSTEM_CLOCK.monotonic() + seconds

        def chunk(self, size_hint: int | None = None) -> bytes:
            if self.deadline is None:
                return super().chunk(size_hint)  # type: ignore[no-any-return]
            left = self.deadline - SYSTEM_CLOCK.monotonic()
            if left <= 0:
                self._late()
            self.sock.settimeout(left)
            try:
                return super().chunk(size_hint)  # type: ignore[no-any-return]
            except TimeoutError:
                self._late()
            finally:
                self.sock.settimeout(None)

        def _late(self) -> NoReturn:
            self.deadline = None
            if self.in_body:
                raise TimeoutError(BODY_TIMEOUT_REASON)
            get_logger().warning(
                "rejected request: %s", HEAD_TIMEOUT_REASON, extra={"outcome": "rejected", "status": 408}
            )
            try:
                self.sock.sendall(head_timeout_answer())
            except OSError:
                pass
            raise NoMoreData(b"")  # gunicorn closes the connection quietly

    def reader_of(conn: Any) -> DeadlineReader | None:
        parser: Any = getattr(conn, "parser", None)
        reader = getattr(parser, "unreader", None)
        if reader is None or isinstance(reader, DeadlineReader):
            return reader
        if not isinstance(reader, SocketUnreader) or reader.buf.tell():
            return None  # not a plain socket reader, or one that already holds bytes: left as gunicorn made it
        armed = DeadlineReader(reader.sock, reader.mxchunk)
        parser.unreader = armed
        return armed

    class DeadlineWorker(base):  # type: ignore[misc]
        def handle(self, conn: Any) -> Any:
            init = type(conn).init

            def init_and_arm() -> None:  # runs once the socket is blocking and the parser exists, before a read
                init(conn)
                reader = reader_of(conn)
                if reader is not None:
                    reader.arm(in_body=False, seconds=HEAD_READ_TIMEOUT_S)

            conn.init = init_and_arm
            return super().handle(conn)

        def handle_request(self, req: Any, conn: Any) -> Any:
            reader = reader_of(conn)
            if reader is not None:
                reader.arm(in_body=True, seconds=BODY_READ_TIMEOUT_S)
            try:
                return super().handle_request(req, conn)
            finally:
                if reader is not None:
                    reader.deadline = None  # the answer is written as before; the next head is armed anew

    DeadlineWorker.__name__ = DeadlineWorker.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineWorker
