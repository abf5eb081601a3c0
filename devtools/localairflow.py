"""A real Airflow API server on 127.0.0.1, for integration tests and demos.

Standard library only: this module is imported from the function's venv and must not import
airflow. It drives Airflow through subprocesses in Airflow's own cached venv (Airflow 2 and 3
cannot share a venv with each other or with the function).

Public API::

    AIRFLOW_VERSIONS: dict[int, str]            # major -> pinned version, {3: "3.3.2", 2: "2.11.2"}
    PASSWORD_USERS: dict[str, tuple[str, str]]  # user -> (password, role) in auth="password" mode
    Auth = Literal["none", "password"]
    class AirflowServerError(RuntimeError)

    ensure_airflow_venv(major: int) -> Path     # build once (locked), then reuse

    class AirflowServer(major, workdir, *, port=None, auth="none", dags_folder=None):
        start() -> None / stop() -> None / kill() -> None / with AirflowServer(...) as s: ...
        major, version, port, auth, home, log_path: attributes; running -> bool
        url -> str                               # "http://127.0.0.1:PORT"
        api_prefix -> str                        # "/api/v1" (Airflow 2) or "/api/v2" (Airflow 3)
        token_for(user, password) -> str         # Airflow 3 JWT from POST /auth/token
        headers_for(user="admin") -> dict[str, str]   # Authorization for that user ({} if auth="none")
        request(method, path, body=None, *, user="admin") -> Response  # never raises on HTTP status
        list_runs(dag_id) -> list[dict]          # all pages; raw run objects (dag_run_id, conf, state, note)
        get_run(dag_id, run_id) -> dict | None

CLI: ``python -m devtools.localairflow ensure --major 3`` and
``python -m devtools.localairflow start --major 3 --port 8080 --auth none`` (foreground until Ctrl-C).

The cache lives in ``${DAGTRIGGER_CACHE:-~/.cache/dagtrigger}``: ``venvs/`` and ``templates/``
(a once-migrated SQLite DB per version, copied into each new AIRFLOW_HOME).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

AIRFLOW_VERSIONS: dict[int, str] = {3: "3.3.2", 2: "2.11.2"}

Auth = Literal["none", "password"]
AUTH_MODES: tuple[Auth, ...] = ("none", "password")

# user -> (password, role). The role is spelled the way each major wants it where used.
PASSWORD_USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "Admin"),
    "op": ("op", "Op"),
    "viewer": ("viewer", "Viewer"),
}

HOST = "127.0.0.1"
DEVTOOLS_DIR = Path(__file__).resolve().parent
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
_PAGE_LIMIT = 100  # the default [api] maximum_page_limit of both majors
_MAX_PAGES = 10_000


class AirflowServerError(RuntimeError):
    """Airflow could not be installed, prepared, started or asked something."""


class Response(NamedTuple):
    """An HTTP answer; ``body`` is parsed JSON when the server sent JSON, else text."""

    status: int
    body: Any
    headers: Mapping[str, str]


def _log(message: str) -> None:
    print(f"[localairflow] {message}", file=sys.stderr, flush=True)


def _version(major: int) -> str:
    try:
        return AIRFLOW_VERSIONS[major]
    except KeyError:
        raise AirflowServerError(
            f"unsupported Airflow major {major!r}; use one of {sorted(AIRFLOW_VERSIONS)}"
        ) from None


def cache_dir() -> Path:
    """Where venvs and template DBs live; read on each call so tests can point it elsewhere."""
    configured = os.environ.get("DAGTRIGGER_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "dagtrigger"


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


# --------------------------------------------------------------------------- venvs


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
        _run_logged(
            [
                venv / "bin" / "python",
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                f"apache-airflow=={version}",
                "--constraint",
                constraints,
            ],
            env=None,
            log_path=log_path,
            timeout=_VENV_BUILD_TIMEOUT_S,
            what=f"pip install apache-airflow=={version}",
        )
        marker.write_text(expected)
        _log(f"Airflow {version} installed in {time.monotonic() - began:.0f} s")
    return venv


# --------------------------------------------------------------------------- environment


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _port_is_free(port: int) -> bool:
    """True if a server could bind the port now (SO_REUSEADDR, as uvicorn and gunicorn use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _wait_port_free(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _port_is_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _airflow_env(major: int, venv: Path, home: Path, *, port: int, auth: Auth, dags_folder: Path) -> dict[str, str]:
    """The whole environment of every Airflow subprocess: no AIRFLOW* setting leaks in from ours."""
    drop = ("AIRFLOW", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS="False",
    )
    base_url = f"http://{HOST}:{port}"
    if major >= 3:
        users = ",".join(f"{user}:{role.lower()}" for user, (_, role) in PASSWORD_USERS.items())
        env.update(
            AIRFLOW__API__HOST=HOST,
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__BASE_URL=base_url,
            AIRFLOW__API__SECRET_KEY=_SECRET_KEY,
            AIRFLOW__API_AUTH__JWT_SECRET=_JWT_SECRET,
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=users,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=str(auth == "none"),
        )
    else:
        backend = "basic_auth" if auth == "password" else "default"
        env.update(
            AIRFLOW__WEBSERVER__WEB_SERVER_HOST=HOST,
            AIRFLOW__WEBSERVER__WEB_SERVER_PORT=str(port),
            AIRFLOW__WEBSERVER__WORKERS="1",
            AIRFLOW__WEBSERVER__BASE_URL=base_url,
            AIRFLOW__WEBSERVER__SECRET_KEY=_SECRET_KEY,
            AIRFLOW__WEBSERVER__WARN_DEPLOYMENT_EXPOSURE="False",
            # The template DB already holds the roles (sync-perm): skip re-syncing them per start.
            AIRFLOW__FAB__UPDATE_FAB_PERMS="False",
            AIRFLOW__API__AUTH_BACKENDS=f"airflow.api.auth.backend.{backend}",
        )
    return env


def _webserver_config(auth: Auth) -> str:
    """Airflow 2's Flask-AppBuilder config; anonymous users act as Admin in ``none`` mode."""
    lines = [
        '"""Written by devtools/localairflow.py."""',
        "from flask_appbuilder.const import AUTH_DB",
        "",
        "AUTH_TYPE = AUTH_DB",
        "WTF_CSRF_ENABLED = True",
        "WTF_CSRF_TIME_LIMIT = None",
    ]
    if auth == "none":
        lines.append("AUTH_ROLE_PUBLIC = 'Admin'")
    return "\n".join(lines) + "\n"


def _write_home_files(major: int, home: Path, auth: Auth) -> None:
    home.mkdir(parents=True, exist_ok=True)
    if major >= 3:
        passwords = {user: password for user, (password, _) in PASSWORD_USERS.items()}
        (home / "passwords.json").write_text(json.dumps(passwords))
    else:
        (home / "webserver_config.py").write_text(_webserver_config(auth))


def _cheapen_password_hashes(db_path: Path) -> None:
    """Rehash the Airflow 2 users with 1-round PBKDF2 (werkzeug's format).

    FAB checks the password on every basic-auth request; werkzeug's default scrypt costs
    ~0.15-0.3 s a request here, which would make burst tests measure hashing, not dagtrigger.
    """
    with contextlib.closing(sqlite3.connect(db_path)) as db, db:
        for user, (password, _) in PASSWORD_USERS.items():
            salt = os.urandom(8).hex()
            digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1).hex()
            updated = db.execute(
                "UPDATE ab_user SET password = ? WHERE username = ?", (f"pbkdf2:sha256:1${salt}${digest}", user)
            ).rowcount
            if updated != 1:
                raise AirflowServerError(f"template DB has no Airflow 2 user {user!r}")


def _template_db(major: int, venv: Path) -> Path:
    """A once-migrated SQLite DB for this version, built under a lock and published atomically.

    For Airflow 2 it also holds the FAB roles (``sync-perm``) and the three password users, so a
    server in either auth mode starts from a copy without further CLI calls (each costs ~3 s).
    """
    version = _version(major)
    templates = cache_dir() / "templates"
    target = templates / f"airflow-{version}-r{_TEMPLATE_REVISION}.db"
    if target.is_file():
        return target
    with _locked(
        templates / f"{target.name}.lock", timeout=_TEMPLATE_TIMEOUT_S, what=f"the Airflow {version} template DB"
    ):
        if target.is_file():
            return target
        _log(f"migrating a template DB for Airflow {version}, first time only, 10-20 s")
        with tempfile.TemporaryDirectory(prefix="template-", dir=templates) as tmp:
            home = Path(tmp) / "home"
            _write_home_files(major, home, "password")
            env = _airflow_env(major, venv, home, port=_free_port(), auth="password", dags_folder=Path(tmp) / "no-dags")
            log_path = Path(tmp) / "template.log"
            airflow = str(venv / "bin" / "airflow")
            commands: list[list[str]] = [[airflow, "db", "migrate"]]
            if major < 3:
                commands.append([airflow, "sync-perm"])
                for user, (password, role) in PASSWORD_USERS.items():
                    commands.append(
                        [
                            airflow,
                            "users",
                            "create",
                            "--username",
                            user,
                            "--password",
                            password,
                            "--role",
                            role,
                            "--firstname",
                            user,
                            "--lastname",
                            "local",
                            "--email",
                            f"{user}@example.invalid",
                        ]
                    )
            for command in commands:
                _run_logged(
                    command, env=env, log_path=log_path, timeout=_CLI_TIMEOUT_S, what=" ".join(command[1:3]), cwd=home
                )
            if major < 3:
                _cheapen_password_hashes(home / "airflow.db")
            staged = templates / f"{target.name}.tmp"
            shutil.copyfile(home / "airflow.db", staged)
            os.replace(staged, target)
    return target


# --------------------------------------------------------------------------- server

_live_servers: weakref.WeakSet[AirflowServer] = weakref.WeakSet()


@atexit.register
def _stop_live_servers() -> None:
    """Do not leave servers behind when a test run or demo exits without stopping them."""
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()


class AirflowServer:
    """One Airflow API server on 127.0.0.1 with its own AIRFLOW_HOME and SQLite DB in ``workdir``.

    The home is prepared on the first ``start()``; later starts (after ``stop()`` or ``kill()``)
    reuse the same DB and port, so runs created before a crash are still there.
    """

    def __init__(
        self,
        major: int,
        workdir: str | os.PathLike[str],
        *,
        port: int | None = None,
        auth: Auth = "none",
        dags_folder: str | os.PathLike[str] | None = None,
    ) -> None:
        if auth not in AUTH_MODES:
            raise AirflowServerError(f"auth must be one of {AUTH_MODES}, got {auth!r}")
        self.major = major
        self.version = _version(major)
        self.auth: Auth = auth
        self.port = port if port is not None else _free_port()
        self.workdir = Path(workdir).resolve()
        self.home = self.workdir / "airflow-home"
        self.log_path = self.workdir / "api-server.log"
        self.dags_folder = Path(dags_folder).resolve() if dags_folder else DEFAULT_DAGS_FOLDER
        self._proc: subprocess.Popen[bytes] | None = None
        self._tokens: dict[str, str] = {}

    # ---- addresses

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_prefix(self) -> str:
        return "/api/v2" if self.major >= 3 else "/api/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"AirflowServer(airflow {self.version}, {self.url}, auth={self.auth})"

    # ---- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the server and return once it answers; raises with the log tail otherwise."""
        if self.running:
            return
        if self._proc is not None:  # it died on its own: clear what is left of its group
            self.kill()
        venv = ensure_airflow_venv(self.major)
        env = _airflow_env(self.major, venv, self.home, port=self.port, auth=self.auth, dags_folder=self.dags_folder)
        _write_home_files(self.major, self.home, self.auth)
        reserialize: subprocess.Popen[bytes] | None = None
        if not (self.home / "airflow.db").is_file():
            shutil.copyfile(_template_db(self.major, venv), self.home / "airflow.db")
            # Put the DAGs into the DB while the server boots: ~5 s saved per first start.
            airflow = str(venv / "bin" / "airflow")
            reserialize = self._spawn([airflow, "dags", "reserialize"], env, self.workdir / "reserialize.log")
        if not _wait_port_free(self.port, _PORT_FREE_TIMEOUT_S):
            self._abort(reserialize)
            raise AirflowServerError(f"port {self.port} on {HOST} is in use by another process")
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        began = time.monotonic()
        self._proc = self._spawn(self._server_command(venv), env, self.log_path)
        _live_servers.add(self)
        try:
            self._wait_ready(log_start)
            if reserialize is not None:
                self._finish_reserialize(reserialize, began + _READY_TIMEOUT_S)
        except BaseException:
            self._abort(reserialize)
            self.kill()
            if reserialize is not None:  # prepare again next time rather than serve no DAGs
                (self.home / "airflow.db").unlink(missing_ok=True)
            raise
        _log(f"Airflow {self.version} ready at {self.url} (auth={self.auth}) in {time.monotonic() - began:.1f} s")

    def _server_command(self, venv: Path) -> list[str]:
        airflow = str(venv / "bin" / "airflow")
        if self.major >= 3:
            return [airflow, "api-server", "--host", HOST, "--port", str(self.port), "--workers", "1"]
        # A pid file left by a killed webserver would stop the next one if its pid got reused.
        pid_file = self.workdir / "webserver.pid"
        pid_file.unlink(missing_ok=True)
        return [
            airflow,
            "webserver",
            "--hostname",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--pid",
            str(pid_file),
        ]

    def stop(self) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL after a bounded wait."""
        self._terminate(graceful=True)

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would."""
        self._terminate(graceful=False)

    def _spawn(self, cmd: list[str], env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} $ {' '.join(cmd)}\n".encode())
            log.flush()
            # Own session: the group can be signalled as a whole (the Airflow 2 webserver forks).
            return subprocess.Popen(
                cmd,
                env=dict(env),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self, log_start: int) -> None:
        probe = "/api/v2/version" if self.major >= 3 else "/health"
        deadline = time.monotonic() + _READY_TIMEOUT_S
        assert self._proc is not None
        while True:
            code = self._proc.poll()
            if code is not None:
                raise AirflowServerError(
                    f"Airflow {self.version} server exited with {code} while starting; "
                    f"log {self.log_path}:\n{_tail(self.log_path, start=log_start)}"
                )
            try:
                with urllib.request.urlopen(self.url + probe, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AirflowServerError(
                    f"Airflow {self.version} did not answer {probe} within {_READY_TIMEOUT_S:.0f} s; "
                    f"log {self.log_path}:\n{_tail(self.log_path, start=log_start)}"
                )
            time.sleep(0.25)

    def _finish_reserialize(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AirflowServerError("airflow dags reserialize did not finish in time") from None
        if code != 0:
            log = self.workdir / "reserialize.log"
            raise AirflowServerError(f"airflow dags reserialize failed (exit {code}); log {log}:\n{_tail(log)}")

    @staticmethod
    def _abort(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_STOP_TIMEOUT_S)

    def _terminate(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        _live_servers.discard(self)
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the leader's pid is the group id
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_STOP_TIMEOUT_S)
        # Always SIGKILL what is left of the group: workers can outlive their master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        try:
            proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AirflowServerError(f"Airflow server pid {proc.pid} did not exit") from None
        if not _wait_port_free(self.port, _PORT_FREE_TIMEOUT_S):
            raise AirflowServerError(f"port {self.port} still in use after stopping Airflow")

    # ---- HTTP helpers

    def token_for(self, user: str, password: str) -> str:
        """An Airflow 3 JWT for ``user`` from ``POST /auth/token`` (valid 24 h, across restarts)."""
        if self.major < 3:
            raise AirflowServerError("Airflow 2 has no /auth/token; use headers_for() (basic auth)")
        answer = self._send("POST", "/auth/token", {"username": user, "password": password}, {})
        if answer.status not in (200, 201) or not isinstance(answer.body, dict):
            raise AirflowServerError(f"POST /auth/token for {user!r} answered {answer.status}: {answer.body!r}")
        return str(answer.body["access_token"])

    def headers_for(self, user: str = "admin") -> dict[str, str]:
        """The Authorization header that makes a request act as ``user`` ({} in ``none`` mode)."""
        if self.auth == "none":
            return {}
        if user not in PASSWORD_USERS:
            raise AirflowServerError(f"unknown user {user!r}; known: {sorted(PASSWORD_USERS)}")
        password = PASSWORD_USERS[user][0]
        if self.major >= 3:
            if user not in self._tokens:
                self._tokens[user] = self.token_for(user, password)
            return {"Authorization": f"Bearer {self._tokens[user]}"}
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {basic}"}

    def request(self, method: str, path: str, body: object = None, *, user: str = "admin") -> Response:
        """Call the server as ``user``; ``path`` starts with ``/``. HTTP errors are returned, not raised."""
        return self._send(method, path, body, self.headers_for(user))

    def list_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of ``dag_id`` in the server's default order, following pagination."""
        runs: list[dict[str, Any]] = []
        base = f"{self.api_prefix}/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns"
        for _ in range(_MAX_PAGES):
            answer = self.request("GET", f"{base}?limit={_PAGE_LIMIT}&offset={len(runs)}")
            if answer.status != 200 or not isinstance(answer.body, dict):
                raise AirflowServerError(f"GET {base} answered {answer.status}: {answer.body!r}")
            page = answer.body.get("dag_runs", [])
            runs.extend(page)
            if not page or len(runs) >= int(answer.body.get("total_entries", 0)):
                return runs
        raise AirflowServerError(f"more than {_MAX_PAGES} pages of runs for {dag_id}")

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any] | None:
        """One run, or None if Airflow answers 404 (no such run or DAG)."""
        quote = urllib.parse.quote
        path = f"{self.api_prefix}/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"
        answer = self.request("GET", path)
        if answer.status == 404:
            return None
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise AirflowServerError(f"GET {path} answered {answer.status}: {answer.body!r}")
        return answer.body

    def _send(self, method: str, path: str, body: object, headers: Mapping[str, str]) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method.upper())
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as answer:
                status, raw, answer_headers = (answer.status, answer.read(), answer.headers)
        except urllib.error.HTTPError as error:
            status, raw, answer_headers = error.code, error.read(), error.headers
        except (urllib.error.URLError, OSError) as error:
            raise AirflowServerError(f"{method} {self.url}{path} failed: {error}") from error
        text = raw.decode("utf-8", "replace")
        parsed: Any = text
        if "json" in answer_headers.get("Content-Type", ""):
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
        return Response(status, parsed, dict(answer_headers.items()))


# --------------------------------------------------------------------------- CLI


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """``ensure`` builds the venv; ``start`` serves in the foreground until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m devtools.localairflow", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    ensure = commands.add_parser("ensure", help="build the cached Airflow venv")
    ensure.add_argument("--major", type=int, choices=sorted(AIRFLOW_VERSIONS), required=True)
    start = commands.add_parser("start", help="run an Airflow API server on 127.0.0.1 until Ctrl-C")
    start.add_argument("--major", type=int, choices=sorted(AIRFLOW_VERSIONS), required=True)
    start.add_argument("--port", type=int, default=None, help="default: a free port")
    start.add_argument("--auth", choices=AUTH_MODES, default="none")
    start.add_argument("--dags-folder", type=Path, default=None, help=f"default: {DEFAULT_DAGS_FOLDER}")
    start.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="AIRFLOW_HOME and logs go here (default: a temporary dir, removed on exit)",
    )
    args = parser.parse_args(argv)

    if args.command == "ensure":
        print(ensure_airflow_venv(args.major))
        return 0

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGHUP, _raise_keyboard_interrupt)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="localairflow-")))
        server = AirflowServer(args.major, workdir, port=args.port, auth=args.auth, dags_folder=args.dags_folder)
        try:
            server.start()
            users = ", ".join(f"{u}/{p} ({r})" for u, (p, r) in PASSWORD_USERS.items())
            print(
                f"Airflow {server.version} at {server.url}{server.api_prefix} "
                f"auth={server.auth}{' users ' + users if server.auth == 'password' else ''}; "
                f"log {server.log_path}; Ctrl-C stops it",
                flush=True,
            )
            while server.running:
                time.sleep(1)
            print(f"Airflow server exited; log {server.log_path}:\n{_tail(server.log_path)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        except AirflowServerError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
