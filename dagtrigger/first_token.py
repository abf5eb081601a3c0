"""Cold start: gunicorn's master fetches the first Google token while its new worker gets ready to serve.

After the port opened, the first event used to wait for google-auth's import (cryptography and asyncio come with
it: ~40 ms of CPU), ``google.auth.default()`` and the token, one after the other, in the worker, while gunicorn's
master sat idle. Now the master does it: right after it forks the worker, a thread in the master fetches the token
with the master's copy of the function's auth (``GoogleAuth.fetch_token``: the same settings, credentials and token
session) and hands it over through a pipe; meanwhile the worker parses the first request, loads the CA bundle and
imports what the first event needs. The worker's first token fetch takes the master's token; every later one is
google-auth in the worker, as before. The token source stays google-auth; only the process that runs it differs.

Nothing is added before the port opens. With two vCPUs at start-up (``--cpu 2``, or Cloud Run's start-up CPU boost)
master and worker run side by side; with one they take turns and the first token costs what it did in the worker.

What keeps it safe:
- the master's thread starts only after the fork, and a later fork (a worker restarted) waits for it to end
  (``JOIN_BEFORE_FORK_S``): no lock held by a thread, no half-imported module, is ever inherited;
- one reader: the first token fetch of the worker takes the answer, then closes its end; anything else (the master's
  end closed with no answer, unreadable data, another auth mode or audience, ``HANDOVER_DEADLINE_S`` passed) is
  the normal fetch in the worker;
- a failure in the master is the failure the worker would have met, raised there as ``CredentialsUnavailable``;
- the token only crosses an anonymous pipe between the two processes of the instance, and is never logged.
"""

from __future__ import annotations

import gc
import json
import os
import select
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from .clock import SYSTEM_CLOCK

HANDOVER_DEADLINE_S = 30.0  # google-auth spends ~15 s on a fetch that fails; then the worker fetches by itself
JOIN_BEFORE_FORK_S = 30.0
MAX_ANSWER_BYTES = 64 * 1024
_OFF = ("0", "false", "no", "off")


@dataclass(frozen=True)
class FirstToken:
    """What the master hands over: the token for ``mode``/``audience``, or why it could not get one."""

    mode: str
    audience: str
    token: str = ""
    expires_at: float = 0.0  # unix seconds
    account: str = ""  # the service account's email, for error messages
    error: str = ""  # CredentialsUnavailable's message when the fetch failed


class TokenSource(Protocol):
    """``GoogleAuth``, as the master uses it here."""

    mode: str

    def handover(self) -> FirstToken: ...


_read_fd = -1
_write_fd = -1
_master_pid = 0
_thread: threading.Thread | None = None
_pending: tuple[int, float] | None = None  # in the worker: the pipe's read end and the deadline (monotonic)
_lock = threading.Lock()


def wanted(env: Mapping[str, str]) -> bool:
    """On unless DAGTRIGGER_FIRST_TOKEN=0 (it runs with the warm-up, which decides where it is on)."""
    return env.get("DAGTRIGGER_FIRST_TOKEN", "").strip().lower() not in _OFF


def start(source: TokenSource, env: Mapping[str, str] | None = None) -> bool:
    """In gunicorn's master, before it forks: fetch the token in this process after the first fork and hand it to
    the child. True if set up (a Google auth mode, not turned off)."""
    global _read_fd, _write_fd, _master_pid
    if _master_pid or source.mode not in ("google", "id-token") or not wanted(os.environ if env is None else env):
        return False
    _read_fd, _write_fd = os.pipe()
    _master_pid = os.getpid()
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=lambda: _after_fork_in_master(source),
        after_in_child=_after_fork_in_child,
    )
    return True


def _before_fork() -> None:
    thread = _thread
    if thread is not None and os.getpid() == _master_pid:
        thread.join(JOIN_BEFORE_FORK_S)  # no fork while the master's thread imports or holds a lock


def _after_fork_in_master(source: TokenSource) -> None:
    global _thread
    if os.getpid() != _master_pid or _thread is not None:
        return  # only the first fork, only in the master
    _thread = threading.Thread(target=_hand_over, args=(source,), name="dagtrigger-first-token", daemon=True)
    _thread.start()


def _hand_over(source: TokenSource) -> None:
    global _write_fd
    fd, _write_fd = _write_fd, -1
    try:
        was_on = gc.isenabled()
        gc.disable()  # google-auth's import creates thousands of objects: ~30 % faster without the collector
        try:
            answer = source.handover()
        finally:
            if was_on:
                gc.enable()
        view = memoryview(json.dumps(asdict(answer)).encode())
        while view:
            view = view[os.write(fd, view) :]
    except Exception:  # noqa: S110 - whatever happened, the worker fetches the token itself
        pass
    finally:
        os.close(fd)  # the worker reads to the end of the pipe


def _after_fork_in_child() -> None:
    global _pending, _write_fd
    if _write_fd >= 0:
        os.close(_write_fd)  # only the master writes: the worker's read ends when the master closes its end
        _write_fd = -1
    if os.getppid() == _master_pid and _read_fd >= 0:
        _pending = (_read_fd, SYSTEM_CLOCK.monotonic() + HANDOVER_DEADLINE_S)
    else:
        _pending = None  # a process the worker forks (a library's) must not take the worker's token


def pending() -> bool:
    """The master's answer is still to be taken in this process (the worker, before its first token)."""
    return _pending is not None


def take(mode: str, audience: str, now: Callable[[], float] = SYSTEM_CLOCK.monotonic) -> FirstToken | None:
    """The master's answer for ``mode``/``audience``, waiting for it until the deadline; None if there is none to
    take (not the worker, already taken, no answer, another mode or audience). Only the first call takes."""
    global _pending
    with _lock:  # held while waiting: ``pending()`` stays true until the answer is in (the warm-up reads it)
        current = _pending
        if current is None:
            return None
        fd, deadline = current
        try:
            data = _read_all(fd, deadline, now)
        finally:
            os.close(fd)
            _pending = None
    try:
        fields: Any = json.loads(data) if data else None
        answer = FirstToken(**fields) if isinstance(fields, dict) else None
    except (ValueError, TypeError):
        return None
    if answer is None or (answer.mode, answer.audience) != (mode, audience):
        return None
    return answer


def _read_all(fd: int, deadline: float, now: Callable[[], float]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_ANSWER_BYTES:
        left = deadline - now()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b""  # the master is still at it past the deadline: the worker fetches by itself
        chunk = os.read(fd, 8192)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return b""
