"""The lifecycle of one local Airflow: its API server, and with ``scheduler=True`` the processes that make runs
execute, each in its own tagged process group (devtools/processes.py), stopped at interpreter exit at the latest."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from devtools import processes
from devtools.localairflow.common import (
    _PORT_FREE_TIMEOUT_S,
    _READY_TIMEOUT_S,
    _STOP_TIMEOUT_S,
    AUTH_MODES,
    DEFAULT_DAGS_FOLDER,
    AirflowServerError,
    Auth,
    _log,
    _tail,
    _version,
)
from devtools.localairflow.home import _airflow_env, _write_home_files
from devtools.localairflow.rest import AirflowApi
from devtools.localairflow.templates import _pg_template, _template_db
from devtools.localairflow.venvs import ensure_airflow_venv, ensure_postgres_driver
from devtools.localpostgres import PostgresCluster, shared_cluster
from devtools.ports import HOST, free_port, wait_port_free

_live_servers: weakref.WeakSet[AirflowServer] = weakref.WeakSet()


def _stop_group(proc: subprocess.Popen[bytes], *, graceful: bool) -> None:
    """Stop the group ``proc`` leads: SIGTERM first if graceful, then SIGKILL to what is left (workers can outlive
    their master)."""
    try:
        processes.stop_group(proc, graceful=graceful, grace_s=_STOP_TIMEOUT_S)
    except RuntimeError as error:
        raise AirflowServerError(f"Airflow process pid {proc.pid}: {error}") from None


@atexit.register
def _stop_live_servers() -> None:
    """Do not leave servers behind when a test run or demo exits without stopping them."""
    for server in list(_live_servers):
        with contextlib.suppress(Exception):
            server.stop()


Database = Literal["sqlite", "postgres"]
DATABASES: tuple[Database, ...] = ("sqlite", "postgres")


class AirflowServer(AirflowApi):
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
        super().__init__(major, port if port is not None else free_port(), auth)
        self.version = _version(major)
        self.database: Database = database
        self.scheduler = scheduler
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

    def process_groups(self) -> list[int]:
        """The process groups this server runs now: the API server's, each helper's (scheduler, dag-processor,
        triggerer) and, on PostgreSQL, the postmaster's (its backends are in it). For the load harness's CPU split."""
        procs = (self._proc, *self._helpers.values())
        groups = [proc.pid for proc in procs if proc is not None and proc.poll() is None]
        if self.database == "postgres":
            postmaster = self.postgres.postmaster_pid()
            if postmaster is not None:
                groups.append(os.getpgid(postmaster))
        return groups

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
            # Own process group: it is signalled as a whole (the Airflow 2 webserver forks), and tagged for reaping.
            what = f"Airflow {self.version} {Path(cmd[0]).name} {cmd[1] if len(cmd) > 1 else ''}".rstrip()
            return processes.spawn(cmd, what=what, stdout=log, env=env, cwd=self.home)

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
        processes.untag(proc.pid)
        if code != 0:
            log = self.workdir / "reserialize.log"
            raise AirflowServerError(f"airflow dags reserialize failed (exit {code}); log {log}:\n{_tail(log)}")

    @staticmethod
    def _abort(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(RuntimeError):
                processes.stop_group(proc, graceful=False)

    def _terminate(self, *, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if not self._helpers:
            _live_servers.discard(self)
        if proc is None:
            return
        _stop_group(proc, graceful=graceful)
        if not wait_port_free(self.port, _PORT_FREE_TIMEOUT_S):
            raise AirflowServerError(f"port {self.port} still in use after stopping Airflow")
