"""Issue 16, finding 13 (the request line): functions-framework turns gunicorn's request-line limit off
(``limit_request_line: 0``), and gunicorn's Python parser copies and searches the whole buffered line on every read,
so the cost grows with the square of the line: a 40 MB URL cost 42 s of CPU, 4 MB cost 1.6 s here, and the request
then reached our code. The head of a request (its line and its headers) is now bounded before our code runs:
``dagtrigger/http_limits.py``."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dagtrigger import http_limits
from dagtrigger.send import webhook_request
from devtools.localfunction import FunctionProcess

from .harness import SECRET

pytestmark = pytest.mark.integration
TOO_LONG = (b"HTTP/1.1 414", b"HTTP/1.1 400")  # gunicorn's answer: 414 URI Too Long (400 in older gunicorn releases)


def _raw(fn: FunctionProcess, head: bytes) -> bytes:
    """Send ``head`` (a request line and headers, no body) on a fresh socket; the first bytes of the answer."""
    with socket.create_connection(("127.0.0.1", fn.port), timeout=30) as sock:
        try:
            sock.sendall(head + b"Content-Length: 2\r\n\r\n{}")
        except OSError:  # the server may answer and close before it has read everything we send
            pass
        return sock.recv(4096)


def test_a_request_line_over_the_limit_is_refused_before_our_code(webhook_function: FunctionProcess) -> None:
    line = b"POST /shop/" + b"a" * (http_limits.MAX_REQUEST_LINE + 1) + b" HTTP/1.1\r\nHost: x\r\n"
    answer = _raw(webhook_function, line)
    assert answer.startswith(TOO_LONG), answer[:200]
    assert not [e for e in webhook_function.logs() if e.get("outcome") == "rejected"]  # our code never saw it


def test_a_megabyte_url_costs_no_more_than_the_limit(webhook_function: FunctionProcess) -> None:
    """A 4 MB line is refused once the limit's bytes are read, never parsed (before: our 401, 1.6 s later)."""
    answer = _raw(webhook_function, b"POST /shop/" + b"a" * 4_000_000 + b" HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(TOO_LONG), answer[:200]


def test_a_long_but_allowed_path_still_works(webhook_function: FunctionProcess, tmp_path: Path) -> None:
    path = "/shop/" + "p" * (http_limits.MAX_REQUEST_LINE - 200)
    out = webhook_request(webhook_function.url, {"order": 13}, path, SECRET, "long-path")
    reply = webhook_function.session.post(out.url, headers=dict(out.headers), data=out.body, timeout=30)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(b"X-Big: " + b"h" * (http_limits.MAX_HEADER_FIELD + 1) + b"\r\n", id="one-field-too-large"),
        pytest.param(b"".join(b"X-%d: v\r\n" % i for i in range(http_limits.MAX_HEADER_FIELDS + 1)), id="too-many"),
    ],
)
def test_headers_over_the_limits_are_refused(webhook_function: FunctionProcess, headers: bytes) -> None:
    """These limits held before (gunicorn's defaults); they are pinned now, so a new functions-framework cannot lift
    them unnoticed. gunicorn answers 431 (400 in older gunicorn releases)."""
    answer = _raw(webhook_function, b"POST /shop HTTP/1.1\r\nHost: x\r\n" + headers)
    assert answer.startswith((b"HTTP/1.1 431", b"HTTP/1.1 400")), answer[:200]
