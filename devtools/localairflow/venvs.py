"""The cached venvs Airflow runs in (one per version; Airflow 2 and 3 cannot share one with each other or with the
function): built once under a lock, marked complete only after pip succeeded, the PostgreSQL driver added on first
use."""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from devtools.localairflow.common import (
    _CLI_TIMEOUT_S,
    _MARKER,
    _VENV_BUILD_TIMEOUT_S,
    CONSTRAINTS_DIR,
    AirflowServerError,
    _locked,
    _log,
    _run_logged,
    _version,
    cache_dir,
)


def _base_python() -> tuple[str, str]:
    """The interpreter to build venvs from, and its tag: python3.11 if present, else our own."""
    found = shutil.which("python3.11")
    if found:
        return found, "py311"
    return sys.executable, f"py{sys.version_info.major}{sys.version_info.minor}"


def _constraints(version: str) -> Path:
    path = CONSTRAINTS_DIR / f"airflow-{version}.txt"
    if not path.is_file():
        raise AirflowServerError(f"missing constraints file {path}; create it with pip freeze")
    return path


def _pip_install(venv: Path, requirement: str, constraints: Sequence[Path], log_path: Path) -> None:
    """``pip install requirement`` into ``venv`` under the given constraint files, its output in ``log_path``."""
    pinned = [arg for file in constraints for arg in ("--constraint", file)]
    command = [venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", requirement, *pinned]
    _run_logged(command, env=None, log_path=log_path, timeout=_VENV_BUILD_TIMEOUT_S, what=f"pip install {requirement}")


def ensure_airflow_venv(major: int) -> Path:
    """Return a venv with the pinned Airflow for ``major``, building it the first time.

    The venv counts as built only when its marker file exists (written after pip succeeded) and
    names the same constraints; anything else is wiped and rebuilt. Concurrent callers wait on a
    file lock instead of building twice.
    """
    version = _version(major)
    python, tag = _base_python()
    constraints = _constraints(version)
    digest = hashlib.sha256(constraints.read_bytes()).hexdigest()[:16]
    venv = cache_dir() / "venvs" / f"airflow-{version}-{tag}"
    marker = venv / _MARKER
    expected = f"apache-airflow=={version} constraints={digest}\n"

    def complete() -> bool:
        try:
            return marker.read_text() == expected
        except OSError:
            return False

    if complete():
        return venv
    with _locked(venv.parent / f"{venv.name}.lock", timeout=_VENV_BUILD_TIMEOUT_S, what=f"the Airflow {version} venv"):
        if complete():  # built by whoever held the lock before us
            return venv
        if venv.exists():
            _log(f"removing incomplete venv {venv}")
            shutil.rmtree(venv)
        log_path = venv.parent / f"{venv.name}.log"
        log_path.write_text("")
        _log(f"installing Apache Airflow {version} into {venv}, first time only, ~1 min (log {log_path})")
        began = time.monotonic()
        _run_logged(
            [python, "-m", "venv", venv], env=None, log_path=log_path, timeout=_CLI_TIMEOUT_S, what="python -m venv"
        )
        _pip_install(venv, f"apache-airflow=={version}", [constraints], log_path)
        marker.write_text(expected)
        _log(f"Airflow {version} installed in {time.monotonic() - began:.0f} s")
    return venv


def venv_installed(major: int, *, postgres: bool = False) -> bool:
    """Whether ``ensure_airflow_venv`` (and with ``postgres`` the driver) would only reuse what is built: callers
    say "first run installs it" only when it does."""
    version = _version(major)
    _, tag = _base_python()
    venv = cache_dir() / "venvs" / f"airflow-{version}-{tag}"
    markers = [venv / _MARKER, *([venv / f"{_MARKER}-postgres"] if postgres else [])]
    return all(marker.is_file() for marker in markers)


def ensure_postgres_driver(major: int) -> Path:
    """Return the Airflow venv with ``apache-airflow[postgres]`` added (psycopg2 and asyncpg).

    Added on first use, in place, under the venv's lock and with its own marker: the SQLite-only
    venv other callers may be using at that moment stays valid and is never rebuilt for it.
    """
    venv = ensure_airflow_venv(major)
    version = _version(major)
    extra = CONSTRAINTS_DIR / f"airflow-{version}-postgres.txt"
    digest = hashlib.sha256(extra.read_bytes()).hexdigest()[:16]
    marker = venv / f"{_MARKER}-postgres"
    expected = f"apache-airflow[postgres]=={version} constraints={digest}\n"
    if marker.is_file() and marker.read_text() == expected:
        return venv
    with _locked(venv.parent / f"{venv.name}.lock", timeout=_VENV_BUILD_TIMEOUT_S, what=f"the Airflow {version} venv"):
        if marker.is_file() and marker.read_text() == expected:
            return venv
        log_path = venv.parent / f"{venv.name}.log"
        _log(f"adding the PostgreSQL driver to the Airflow {version} venv, first time only (log {log_path})")
        _pip_install(venv, f"apache-airflow[postgres]=={version}", [_constraints(version), extra], log_path)
        marker.write_text(expected)
    return venv
