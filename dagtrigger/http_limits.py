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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

    load_config._dagtrigger_limits = True  # type: ignore[attr-defined]
    application.load_config = load_config  # type: ignore[method-assign]
    return True
