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
    ensure_postgres_driver(major: int) -> Path  # the same venv plus apache-airflow[postgres]

    class AirflowServer(major, workdir, *, port=None, auth="none", dags_folder=None,
                        database="sqlite" | "postgres", scheduler=False, postgres=None, extra_env=None):
        start() -> None / stop() -> None / kill() -> None / with AirflowServer(...) as s: ...
        kill_api_server() -> None                # crash the API server only; start() brings it back
        major, version, port, auth, home, log_path, database, scheduler: attributes; running -> bool
        postgres -> PostgresCluster              # database="postgres": the cluster (default: shared_cluster())
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
import fcntl
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self

from devtools.localpostgres import PostgresCluster, shared_cluster
from devtools.ports import HOST, free_port, wait_port_free

AIRFLOW_VERSIONS: dict[int, str] = {3: "3.3.2", 2: "2.11.2"}

Auth = Literal["none", "password"]
AUTH_MODES: tuple[Auth, ...] = ("none", "password")

# user -> (password, role). The role is spelled the way each major wants it where used.
PASSWORD_USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "Admin"),
    "op": ("op", "Op"),
    "viewer": ("viewer", "Viewer"),
}

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
_PARALLELISM = 4  # task slots of the LocalExecutor; the machine has 2 CPUs
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


# --------------------------------------------------------------------------- environment


def _airflow_env(
    major: int,
    venv: Path,
    home: Path,
    *,
    port: int,
    auth: Auth,
    dags_folder: Path,
    sql_conn: str | None = None,
    scheduler: bool = False,
) -> dict[str, str]:
    """The whole environment of every Airflow subprocess: no AIRFLOW* setting leaks in from ours.

    ``sql_conn`` defaults to SQLite in ``home``. With ``scheduler`` tasks run under the
    LocalExecutor with small parallelism (two CPUs are shared here) and no log server: the API
    server reads task logs from ``home/logs`` itself, and nothing listens on 0.0.0.0.
    """
    drop = ("AIRFLOW", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sql_conn or f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS="False",
    )
    if scheduler:
        env.update(
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM=str(_PARALLELISM),
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(_PARALLELISM),
            AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG="1000",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT="0",
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="0",
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
        for user, hashed in _cheap_hashes().items():
            updated = db.execute("UPDATE ab_user SET password = ? WHERE username = ?", (hashed, user)).rowcount
            if updated != 1:
                raise AirflowServerError(f"template DB has no Airflow 2 user {user!r}")


def _cheap_hashes() -> dict[str, str]:
    """user -> its password as a 1-round PBKDF2 hash in werkzeug's format (see _cheapen_password_hashes)."""
    hashes = {}
    for user, (password, _) in PASSWORD_USERS.items():
        salt = os.urandom(8).hex()
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 1).hex()
        hashes[user] = f"pbkdf2:sha256:1${salt}${digest}"
    return hashes


def _template_commands(major: int, airflow: str) -> list[list[str]]:
    """The CLI calls that prepare an empty metadata DB: migrate; for Airflow 2 also roles and users."""
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
    return commands


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
            env = _airflow_env(major, venv, home, port=free_port(), auth="password", dags_folder=Path(tmp) / "no-dags")
            log_path = Path(tmp) / "template.log"
            airflow = str(venv / "bin" / "airflow")
            for command in _template_commands(major, airflow):
                _run_logged(
                    command, env=env, log_path=log_path, timeout=_CLI_TIMEOUT_S, what=" ".join(command[1:3]), cwd=home
                )
            if major < 3:
                _cheapen_password_hashes(home / "airflow.db")
            staged = templates / f"{target.name}.tmp"
            shutil.copyfile(home / "airflow.db", staged)
            os.replace(staged, target)
    return target


_pg_templates_lock = threading.Lock()


def _pg_template(major: int, venv: Path, cluster: PostgresCluster) -> str:
    """A migrated template database for this version in ``cluster``, built once per cluster.

    Each server's database is then a ``CREATE DATABASE … TEMPLATE`` copy (well under a second)
    instead of its own ``db migrate`` (~10-30 s on PostgreSQL here).
    """
    version = _version(major)
    name = f"tmpl_airflow_{version.replace('.', '_')}_r{_TEMPLATE_REVISION}"
    with _pg_templates_lock:
        if cluster.database_exists(name):
            return name
        _log(f"migrating a PostgreSQL template database for Airflow {version} (once per cluster, 10-30 s)")
        staging = f"{name}_staging"
        cluster.drop_database(staging)
        cluster.create_database(staging)
        with tempfile.TemporaryDirectory(prefix="pg-template-") as tmp:
            home = Path(tmp) / "home"
            _write_home_files(major, home, "password")
            env = _airflow_env(
                major,
                venv,
                home,
                port=free_port(),
                auth="password",
                dags_folder=Path(tmp) / "no-dags",
                sql_conn=cluster.url(staging),
            )
            log_path = cluster.root / f"{name}.log"
            for command in _template_commands(major, str(venv / "bin" / "airflow")):
                _run_logged(
                    command, env=env, log_path=log_path, timeout=_CLI_TIMEOUT_S, what=" ".join(command[1:3]), cwd=home
                )
        if major < 3:
            for user, hashed in _cheap_hashes().items():
                # Both values are ours: a fixed user name and a hex hash.
                sql = f"UPDATE ab_user SET password = '{hashed}' WHERE username = '{user}'"  # noqa: S608
                cluster.psql(sql, staging)
        cluster.psql(f"ALTER DATABASE {staging} RENAME TO {name}")
        return name


# --------------------------------------------------------------------------- server

_live_servers: weakref.WeakSet[AirflowServer] = weakref.WeakSet()


def _stop_group(proc: subprocess.Popen[bytes], *, graceful: bool) -> None:
    """Signal the process group ``proc`` leads (start_new_session): SIGTERM first if graceful, then SIGKILL."""
    pgid = proc.pid
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
        raise AirflowServerError(f"Airflow process pid {proc.pid} did not exit") from None


@atexit.register
def _stop_live_servers() -> None:
    """Do not leave servers behind when a test run or demo exits without stopping them."""
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()


Database = Literal["sqlite", "postgres"]
DATABASES: tuple[Database, ...] = ("sqlite", "postgres")


class AirflowServer:
    """One Airflow API server on 127.0.0.1 with its own AIRFLOW_HOME in ``workdir``.

    ``database="sqlite"`` (the fast default) keeps the DB in the home; ``"postgres"`` gives the
    server its own database in a PostgreSQL cluster (``postgres=``, default: the process's
    shared one). ``scheduler=True`` also runs the scheduler (Airflow 2: with its DAG processor;
    Airflow 3: plus ``dag-processor`` and ``triggerer``) under the LocalExecutor, so runs execute;
    without it runs stay ``queued``. ``extra_env`` adds ``AIRFLOW__…`` settings (e.g. scheduler
    tuning). The home and DB are prepared on the first ``start()``; later starts (after
    ``stop()``, ``kill()`` or ``kill_api_server()``) reuse them and the port, so runs survive.
    """

    def __init__(
        self,
        major: int,
        workdir: str | os.PathLike[str],
        *,
        port: int | None = None,
        auth: Auth = "none",
        dags_folder: str | os.PathLike[str] | None = None,
        database: Database = "sqlite",
        scheduler: bool = False,
        postgres: PostgresCluster | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        if auth not in AUTH_MODES:
            raise AirflowServerError(f"auth must be one of {AUTH_MODES}, got {auth!r}")
        if database not in DATABASES:
            raise AirflowServerError(f"database must be one of {DATABASES}, got {database!r}")
        if scheduler and database == "sqlite" and major < 3:
            raise AirflowServerError("Airflow 2 runs the LocalExecutor only on PostgreSQL: use database='postgres'")
        self.major = major
        self.version = _version(major)
        self.auth: Auth = auth
        self.database: Database = database
        self.scheduler = scheduler
        self.port = port if port is not None else free_port()
        self.workdir = Path(workdir).resolve()
        self.home = self.workdir / "airflow-home"
        self.log_path = self.workdir / "api-server.log"
        self.dags_folder = Path(dags_folder).resolve() if dags_folder else DEFAULT_DAGS_FOLDER
        self.extra_env = dict(extra_env or {})
        self._postgres = postgres
        self.db_name = f"airflow{major}_{self.port}_{os.getpid()}"
        self._db_ready = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._helpers: dict[str, subprocess.Popen[bytes]] = {}
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
        """The API server is up (the scheduler's processes are not part of this)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def postgres(self) -> PostgresCluster:
        """The cluster holding this server's database (``database="postgres"`` only)."""
        if self.database != "postgres":
            raise AirflowServerError("this Airflow runs on SQLite")
        if self._postgres is None:
            self._postgres = shared_cluster()
        return self._postgres

    def __repr__(self) -> str:
        return f"AirflowServer(airflow {self.version}, {self.url}, auth={self.auth}, {self.database})"

    # ---- lifecycle

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _env(self, venv: Path) -> dict[str, str]:
        sql_conn = self.postgres.url(self.db_name) if self.database == "postgres" else None
        env = _airflow_env(
            self.major,
            venv,
            self.home,
            port=self.port,
            auth=self.auth,
            dags_folder=self.dags_folder,
            sql_conn=sql_conn,
            scheduler=self.scheduler,
        )
        env.update(self.extra_env)
        return env

    def _prepare_db(self, venv: Path) -> bool:
        """Create this server's DB from the template on first use; True if it is new (needs DAGs)."""
        if self.database == "postgres":
            if self._db_ready:
                return False
            cluster = self.postgres
            cluster.drop_database(self.db_name)
            cluster.create_database(self.db_name, template=_pg_template(self.major, venv, cluster))
            self._db_ready = True
            return True
        if (self.home / "airflow.db").is_file():
            return False
        shutil.copyfile(_template_db(self.major, venv), self.home / "airflow.db")
        return True

    def _forget_db(self) -> None:
        if self.database == "postgres":
            self._db_ready = False
        else:
            (self.home / "airflow.db").unlink(missing_ok=True)

    def start(self) -> None:
        """Start what is not running (API server; scheduler processes if asked) and wait until it answers.

        Raises with the log tail otherwise.
        """
        if self.running:
            self._start_helpers()
            return
        if self._proc is not None:  # it died on its own: clear what is left of its group
            self.kill_api_server()
        venv = ensure_postgres_driver(self.major) if self.database == "postgres" else ensure_airflow_venv(self.major)
        _write_home_files(self.major, self.home, self.auth)
        new_db = self._prepare_db(venv)
        env = self._env(venv)
        reserialize: subprocess.Popen[bytes] | None = None
        if new_db:
            # Put the DAGs into the DB while the server boots: ~5 s saved per first start.
            airflow = str(venv / "bin" / "airflow")
            reserialize = self._spawn([airflow, "dags", "reserialize"], env, self.workdir / "reserialize.log")
        if not wait_port_free(self.port, _PORT_FREE_TIMEOUT_S):
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
            self._start_helpers(venv, env)
        except BaseException:
            self._abort(reserialize)
            self.kill()
            if reserialize is not None:  # prepare again next time rather than serve no DAGs
                self._forget_db()
            raise
        what = f"auth={self.auth}, {self.database}{', scheduler' if self.scheduler else ''}"
        _log(f"Airflow {self.version} ready at {self.url} ({what}) in {time.monotonic() - began:.1f} s")

    def _helper_commands(self, venv: Path) -> dict[str, list[str]]:
        """The processes that make runs execute; each without a log server (they bind 0.0.0.0)."""
        if not self.scheduler:
            return {}
        airflow = str(venv / "bin" / "airflow")

        def command(name: str, *args: str) -> list[str]:
            pid_file = self.workdir / f"{name}.pid"
            pid_file.unlink(missing_ok=True)  # a stale pid file stops the next start if its pid was reused
            return [airflow, name, *args, "--pid", str(pid_file)]

        commands = {"scheduler": command("scheduler", "--skip-serve-logs")}
        if self.major >= 3:
            commands["dag-processor"] = command("dag-processor")
            commands["triggerer"] = command("triggerer", "--skip-serve-logs")
        return commands

    def _start_helpers(self, venv: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        if not self.scheduler:
            return
        if venv is None or env is None:
            venv = ensure_airflow_venv(self.major)
            env = self._env(venv)
        for name, cmd in self._helper_commands(venv).items():
            proc = self._helpers.get(name)
            if proc is not None and proc.poll() is None:
                continue
            if proc is not None:
                _stop_group(proc, graceful=False)
            self._helpers[name] = self._spawn(cmd, env, self.workdir / f"{name}.log")

    @property
    def helpers_running(self) -> dict[str, bool]:
        """name -> alive, for the scheduler's processes."""
        return {name: proc.poll() is None for name, proc in self._helpers.items()}

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
        """Stop every process group (scheduler's first): SIGTERM, then SIGKILL after a bounded wait."""
        self._stop_helpers(graceful=True)
        self._terminate(graceful=True)

    def kill(self) -> None:
        """SIGKILL every process group at once, as a crash of the whole Airflow would."""
        self._stop_helpers(graceful=False)
        self._terminate(graceful=False)

    def kill_api_server(self) -> None:
        """SIGKILL only the API server (the scheduler keeps running); ``start()`` brings it back."""
        self._terminate(graceful=False)

    def _stop_helpers(self, *, graceful: bool) -> None:
        helpers, self._helpers = self._helpers, {}
        for proc in helpers.values():
            _stop_group(proc, graceful=graceful)

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
        if not self._helpers:
            _live_servers.discard(self)
        if proc is None:
            return
        _stop_group(proc, graceful=graceful)
        if not wait_port_free(self.port, _PORT_FREE_TIMEOUT_S):
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

    def wait_run(self, dag_id: str, run_id: str, timeout_s: float) -> dict[str, Any] | None:
        """The run once it is final (success or failed), polled every 0.5 s; at the deadline, the last one seen
        (None if it does not exist). Needs a scheduler: without one a run stays queued."""
        deadline = time.monotonic() + timeout_s
        run = self.get_run(dag_id, run_id)
        while time.monotonic() < deadline and (run is None or run.get("state") not in ("success", "failed")):
            time.sleep(0.5)
            run = self.get_run(dag_id, run_id)
        return run

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


def function_env(airflow: AirflowServer, user: str = "op", **extra: str) -> dict[str, str]:
    """Settings for the function to talk to this server as ``user`` (basic on Airflow 2, JWT on Airflow 3)."""
    env = {
        "AIRFLOW_URI": airflow.url,
        "DAG_ID": "dagtrigger_example",
        "AIRFLOW_AUTH": "basic" if airflow.major == 2 else "airflow-jwt",
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": user,
        "AIRFLOW_RETRY_BUDGET_SECONDS": "3",
        "AIRFLOW_TIMEOUT_SECONDS": "10",
        # SQLite allows one writer: Airflow 3's api-server answers 500 and then hangs under concurrent trigger
        # POSTs (measured here), so the function queues its calls. Production databases take the default of 8.
        "AIRFLOW_MAX_IN_FLIGHT": "1",
    }
    env.update(extra)
    return env


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
