"""Cold start: do what the first event would otherwise wait for while the instance starts.

The first event of a new instance pays for resolving credentials and fetching the first token, probing the Airflow
API version and opening the (TLS) connection to Airflow. The warm-up does all three in a daemon thread through the
client's own session and auth (``AirflowClient.warm_up``), with one request: the version probe, or, when
``AIRFLOW_API_VERSION`` is set, ``GET /api/<version>/version``, which confirms it (a version this Airflow does not
serve is corrected here, with a warning). With Google auth it first imports google-auth's token modules with the
cyclic garbage collector paused (``preload``): the largest single cost of the first token; or, when gunicorn's master
fetches the first token for the worker (``first_token``), it loads the CA bundle and opens the connection meanwhile,
with a request that carries no credential. It never raises and never fails start-up: when Airflow or the metadata
server is briefly unreachable it logs one line and the first event does the work itself, as before. The client's
locks (the version probe, the token cache, the connection being opened) make a first event that arrives during the
warm-up wait for it and share its result instead of doing it twice.

Where it runs matters: functions-framework imports ``main.py`` in gunicorn's master, *before* it binds the port, and
forks the worker that serves requests. So ``start`` only registers a fork hook and the thread starts in the worker,
right after the fork: nothing is added before the port opens, and no lock held by a thread, no socket of a pooled
connection is inherited across the fork (both would hang or corrupt the worker's first calls).

On by default on Cloud Run (``K_SERVICE`` is set there); ``DAGTRIGGER_WARMUP=1`` turns it on elsewhere (bench),
``DAGTRIGGER_WARMUP=0`` off.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping

from dagtrigger import first_token
from dagtrigger.airflow import AirflowClient
from dagtrigger.airflow_auth import GoogleAuth
from dagtrigger.clock import SYSTEM_CLOCK, Clock
from dagtrigger.pipeline import load_stages


def enabled(env: Mapping[str, str]) -> bool:
    """On where Cloud Run runs us, unless DAGTRIGGER_WARMUP=0; anywhere with DAGTRIGGER_WARMUP=1."""
    setting = env.get("DAGTRIGGER_WARMUP", "").strip().lower()
    if setting in ("0", "false", "no", "off"):
        return False
    return setting in ("1", "true", "yes", "on") or bool(env.get("K_SERVICE"))


# What the first Google token imports (google-auth's credentials, transport, crypto and asyncio): ~50 ms at a cold
# start, ~30 ms with the cyclic garbage collector paused (it runs again and again while thousands of module objects
# are created, and each time walks them all). Measured by bench/ (the cold-start rows) and python -X importtime.
GOOGLE_TOKEN_MODULES = (
    "google.auth",
    "google.auth.exceptions",
    "google.auth.transport.requests",
    "google.auth.compute_engine",
    "google.oauth2.credentials",  # google.auth.default() imports it (quota project), with reauth and webauthn
    "google.oauth2.id_token",
)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (reference counting still frees memory), then as it was."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def preload(client: AirflowClient) -> bool:
    """Import what the first token fetch will import, with the collector paused; True if it did (Google auth)."""
    if getattr(client.auth, "mode", None) not in ("google", "id-token"):
        return False
    with gc_paused():
        for module in GOOGLE_TOKEN_MODULES:
            importlib.import_module(module)
    return True


def warm(
    client: AirflowClient, log: logging.Logger, clock: Clock = SYSTEM_CLOCK, release: Callable[[], None] = lambda: None
) -> bool:
    """Token, API version and connection, once; True if it got them. Never raises (start-up must not fail).
    ``release``: ends ``client.hold_first_calls``, whatever happens."""
    began = clock.monotonic()
    try:
        load_stages()  # what the first event runs, imported here in the worker rather than before the port opened
        client.preload_trust()  # the CA bundle, once: every connection to Airflow is checked against it
        if first_token.pending():  # the master is fetching the token: meanwhile, the TLS handshake (no credential)
            client.open_connection()
        else:
            preload(client)
        version = client.warm_up()  # one request: the probe, or GET …/version confirming a configured version
    except Exception as exc:  # anything here only means the first event does the work itself
        took = round(clock.monotonic() - began, 3)
        log.info("warm-up skipped: %s", f"{type(exc).__name__}: {exc}"[:300], extra={"warmup_s": took})
        return False
    finally:
        release()
    log.debug("warm-up done", extra={"warmup_s": round(clock.monotonic() - began, 3), "api_version": version})
    return True


def in_thread(client: AirflowClient, log: logging.Logger) -> threading.Thread:
    """Warm in a daemon thread now; returns the thread (tests join it)."""
    release = client.hold_first_calls()  # before the thread starts: no event can slip in ahead of the warm-up
    thread = threading.Thread(
        target=warm, args=(client, log), kwargs={"release": release}, name="dagtrigger-warmup", daemon=True
    )
    thread.start()
    return thread


def start(client: AirflowClient, log: logging.Logger, env: Mapping[str, str] | None = None) -> bool:
    """If enabled (see module doc), warm up in the first process forked from this one (gunicorn's worker).

    Returns whether the hook was registered. Without a fork (Flask's debug server) nothing is warmed.
    """
    env = os.environ if env is None else env
    if not enabled(env):
        return False
    if isinstance(client.auth, GoogleAuth):
        first_token.start(client.auth, env)  # first: its fork hook must run before the warm-up's in the worker
    parent = os.getpid()
    started: list[int] = []

    def after_fork() -> None:
        if os.getppid() == parent and not started:  # the worker, once; not a grandchild of some library's fork
            started.append(os.getpid())
            in_thread(client, log)

    os.register_at_fork(after_in_child=after_fork)
    return True
