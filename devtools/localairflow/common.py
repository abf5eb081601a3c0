"""What every part of the local Airflow shares: the versions, users and secrets, the cache, locks and logged
subprocess runs. Standard library only (imported from the function's venv; never imports airflow)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

from devtools.processes import cache_dir

__all__ = ["cache_dir"]

AIRFLOW_VERSIONS: dict[int, str] = {3: "3.3.2", 2: "2.11.2"}

Auth = Literal["none", "password"]
AUTH_MODES: tuple[Auth, ...] = ("none", "password")

# user -> (password, role). The role is spelled the way each major wants it where used.
PASSWORD_USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "Admin"),
    "op": ("op", "Op"),
    "viewer": ("viewer", "Viewer"),
}

DEVTOOLS_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DAGS_FOLDER = DEVTOOLS_DIR / "dags"
CONSTRAINTS_DIR = DEVTOOLS_DIR / "constraints"

# Fixed secrets: tokens stay valid across a restart of the same server. Local use only.
_JWT_SECRET = "dagtrigger-local-airflow-jwt-secret-" + "0123456789abcdef" * 4
_SECRET_KEY = "dagtrigger-local-airflow-secret-key"

# Bump when the template recipe changes, so stale templates are not reused.
_TEMPLATE_REVISION = 2
_MARKER = ".dagtrigger-complete"

_VENV_BUILD_TIMEOUT_S = 900.0
_TEMPLATE_TIMEOUT_S = 300.0
_CLI_TIMEOUT_S = 180.0
_READY_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 20.0
_PORT_FREE_TIMEOUT_S = 15.0
_HTTP_TIMEOUT_S = 15.0
_PARALLELISM = 4  # task slots of the LocalExecutor; the machine has 2 CPUs
_PAGE_LIMIT = 100  # the default [api] maximum_page_limit of both majors
_MAX_PAGES = 10_000


class AirflowServerError(RuntimeError):
    """Airflow could not be installed, prepared, started or asked something."""


def _log(message: str) -> None:
    print(f"[localairflow] {message}", file=sys.stderr, flush=True)


def _version(major: int) -> str:
    try:
        return AIRFLOW_VERSIONS[major]
    except KeyError:
        raise AirflowServerError(
            f"unsupported Airflow major {major!r}; use one of {sorted(AIRFLOW_VERSIONS)}"
        ) from None


@contextlib.contextmanager
def _locked(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; waits at most ``timeout`` s for another holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AirflowServerError(
                        f"gave up after {timeout:.0f} s waiting for {what} (lock {path})"
                    ) from None
                if not announced:
                    _log(f"waiting for another process building {what}")
                    announced = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40, *, start: int = 0) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            data = handle.read()
    except OSError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


def _run_logged(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None,
    log_path: Path,
    timeout: float,
    what: str,
    cwd: Path | None = None,
) -> None:
    """Run a command with its output appended to ``log_path``; raise with the log tail on failure."""
    with open(log_path, "ab") as log:
        start = log.tell()
        log.write(f"\n$ {' '.join(map(str, cmd))}\n".encode())
        log.flush()
        try:
            proc = subprocess.run(
                list(cmd),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise AirflowServerError(
                f"{what} took longer than {timeout:.0f} s; log {log_path}:\n{_tail(log_path, start=start)}"
            ) from None
    if proc.returncode != 0:
        raise AirflowServerError(
            f"{what} failed (exit {proc.returncode}); log {log_path}:\n{_tail(log_path, start=start)}"
        )
