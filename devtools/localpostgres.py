"""A real PostgreSQL server on 127.0.0.1 for Airflow's metadata database (Cloud SQL in Composer).

Standard library only. It runs Debian's ``postgresql`` package binaries (``.ci/run`` and
``devtools/ensure-postgres.sh`` install them when missing). initdb refuses to run as root, so
when we are root the cluster belongs to the ``postgres`` user and its commands run through
``runuser``. One cluster per process is enough for every Airflow a test session starts: each
Airflow gets its own database, copied from a migrated template database (``CREATE DATABASE …
TEMPLATE``, well under a second, instead of ``airflow db migrate`` each time).

Public API::

    class PostgresError(RuntimeError)
    class PostgresCluster(workdir=None, *, port=None):
        start() / stop() / kill() / restart(*, immediate=False) / running -> bool
        port, datadir, log_path; url(database, driver="psycopg2") -> str
        psql(sql, database="postgres") -> str        # one statement, output as unaligned text
        create_database(name, template=None) / database_exists(name) -> bool
    shared_cluster() -> PostgresCluster   # started on first use, stopped at interpreter exit
    find_bindir() -> Path                 # where initdb/pg_ctl/psql live; raises with the install command

CLI: ``python -m devtools.localpostgres start`` (foreground until Ctrl-C).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from devtools import processes
from devtools.ports import HOST, free_port, wait_port_free

_OWNER = "postgres"  # the Debian package's system user; used only when we run as root
_SUPERUSER = "postgres"  # the database role; trusted on loopback (local use only)
_CMD_TIMEOUT_S = 120.0
_START_TIMEOUT_S = 60
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Settings for a disposable test cluster. fsync off: the data dies with the test session anyway, and
# the machine's disk is shared with four other engineers; everything else stays at PostgreSQL's defaults.
_SERVER_SETTINGS = {
    "listen_addresses": HOST,
    "max_connections": "300",  # two Airflows x (api-server pool + scheduler + workers + triggerer) + psql
    "fsync": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}


class PostgresError(RuntimeError):
    """PostgreSQL could not be found, initialised, started or asked something."""


def _log(message: str) -> None:
    print(f"[localpostgres] {message}", file=sys.stderr, flush=True)


def find_bindir() -> Path:
    """The directory holding initdb, pg_ctl and psql: ``$PG_BINDIR``, Debian's layout, or PATH."""
    configured = os.environ.get("PG_BINDIR")
    candidates = [Path(configured)] if configured else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "psql")):
            return bindir
    raise PostgresError(
        "PostgreSQL server binaries not found (initdb, pg_ctl); install them with "
        "`bash devtools/ensure-postgres.sh` (Debian: apt-get install postgresql) or set PG_BINDIR"
    )


def _as_owner() -> list[str]:
    """The prefix that runs a server command as the cluster's owner (``runuser`` when we are root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(_OWNER)
    except KeyError:
        raise PostgresError(f"running as root needs the system user {_OWNER!r} (Debian's postgresql package)") from None
    return ["runuser", "-u", _OWNER, "--"]


class PostgresCluster:
    """One PostgreSQL cluster in its own directory, listening on 127.0.0.1 only, on a free port."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None, *, port: int | None = None) -> None:
        self.bindir = find_bindir()
        # Its own directory, not under the caller's: pytest's tmp dirs are 0700 root, which the
        # postgres user could not enter.
        base = Path(workdir) if workdir else Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="dagtrigger-pg-", dir=base))
        self.datadir = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = port if port is not None else free_port()
        self._owner = _as_owner()
        if self._owner:
            shutil.chown(self.root, _OWNER, _OWNER)
        self._started = False
        self._postmaster: int | None = None

    def __repr__(self) -> str:
        return f"PostgresCluster({HOST}:{self.port}, {self.datadir})"

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- lifecycle

    def _run(
        self,
        cmd: Sequence[str],
        *,
        what: str,
        owner: bool = True,
        timeout: float = _CMD_TIMEOUT_S,
        stdin_text: str | None = None,
    ) -> str:
        full = [*(self._owner if owner else []), *cmd]
        feed = {"input": stdin_text} if stdin_text is not None else {"stdin": subprocess.DEVNULL}
        try:
            done = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False, **feed)
        except subprocess.TimeoutExpired:
            raise PostgresError(f"{what} took longer than {timeout:.0f} s") from None
        if done.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise PostgresError(f"{what} failed (exit {done.returncode}): {done.stderr.strip()}\n{log}")
        return done.stdout

    def _initdb(self) -> None:
        began = time.monotonic()
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                _SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initdb",
        )
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write("\n# devtools/localpostgres.py\n")
            for key, value in {**_SERVER_SETTINGS, "unix_socket_directories": str(self.root)}.items():
                conf.write(f"{key} = '{value}'\n")
        _log(f"initdb in {time.monotonic() - began:.1f} s ({self.datadir})")

    def start(self) -> None:
        """Initialise the cluster on first use, start it and wait until it accepts connections."""
        if self.running:
            return
        if not (self.datadir / "PG_VERSION").is_file():
            self._initdb()
        if not wait_port_free(self.port, 15):
            raise PostgresError(f"port {self.port} on {HOST} is in use by another process")
        began = time.monotonic()
        processes.reap_once()
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.log_path),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "start",
            ],
            what="pg_ctl start",
        )
        self._started = True
        _live.add(self)
        # pg_ctl starts the postmaster in its own session: tag it, so a run that dies unstopped gets it reaped.
        self._postmaster = self._postmaster_pid()
        if self._postmaster:
            processes.tag(self._postmaster, f"PostgreSQL cluster {self.root}", remove=[self.root])
        _log(f"PostgreSQL ready at {HOST}:{self.port} in {time.monotonic() - began:.1f} s")

    @property
    def running(self) -> bool:
        if not self._started:
            return False
        done = subprocess.run(
            [*self._owner, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status"],
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        return done.returncode == 0

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (None if it is not running)."""
        return self._postmaster_pid() if self.running else None

    def _postmaster_pid(self) -> int | None:
        """The postmaster's pid, from the first line of ``postmaster.pid`` (None if it is not running)."""
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _pg_ctl_stop(self, mode: str) -> None:
        self._run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "30", "stop"],
            what=f"pg_ctl stop -m {mode}",
        )
        if self._postmaster:
            processes.untag(self._postmaster)
            self._postmaster = None

    def stop(self) -> None:
        """Fast shutdown (open connections are closed); the data directory is removed."""
        if self.running:
            self._pg_ctl_stop("fast")
        self._started = False
        _live.discard(self)
        shutil.rmtree(self.root, ignore_errors=True)

    def kill(self) -> None:
        """Stop without a checkpoint, as a crash would (``immediate``); the data stays for ``start()``."""
        if self.running:
            self._pg_ctl_stop("immediate")
        self._started = False

    def restart(self, *, immediate: bool = False, down_s: float = 0.0) -> None:
        """Stop (fast, or ``immediate`` as a crash), stay down ``down_s`` seconds, start on the same port."""
        if immediate:
            self.kill()
        elif self.running:
            self._pg_ctl_stop("fast")
            self._started = False
        time.sleep(down_s)
        self.start()

    # ---- databases

    def url(self, database: str, driver: str = "psycopg2") -> str:
        """A SQLAlchemy URL for ``database`` as the trusted superuser over TCP on loopback."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{_SUPERUSER}@{HOST}:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL statement with psql (tuples only, unaligned) and return its output."""
        return self._run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                _SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            what=f"psql {sql[:60]!r}",
            owner=False,
        )

    def _client(self, tool: str, database: str) -> list[str]:
        return [str(self.bindir / tool), "-h", HOST, "-p", str(self.port), "-U", _SUPERUSER, "-d", database]

    def dump(self, database: str) -> str:
        """The database as plain SQL (``pg_dump --no-owner --no-privileges``), to restore into another cluster."""
        _check_name(database)
        return self._run(
            [*self._client("pg_dump", database), "--no-owner", "--no-privileges"],
            what=f"pg_dump {database}",
            owner=False,
        )

    def restore(self, database: str, sql: str) -> None:
        """Run a ``dump()`` into ``database`` (which must exist), stopping at the first error."""
        _check_name(database)
        self._run(
            [*self._client("psql", database), "-X", "-q", "-v", "ON_ERROR_STOP=1"],
            what=f"restore into {database}",
            owner=False,
            stdin_text=sql,
        )

    def database_exists(self, name: str) -> bool:
        _check_name(name)
        query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 (name checked above)
        return self.psql(query).strip() == "1"

    def create_database(self, name: str, template: str | None = None) -> None:
        """Create ``name`` (a copy of ``template`` if given: it must have no open connections)."""
        _check_name(name)
        clause = ""
        if template is not None:
            _check_name(template)
            clause = f" TEMPLATE {template}"
        self.psql(f"CREATE DATABASE {name}{clause}")

    def drop_database(self, name: str) -> None:
        _check_name(name)
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise PostgresError(f"database name {name!r} must match {_NAME.pattern}")


_live: set[PostgresCluster] = set()
_shared: PostgresCluster | None = None
_shared_lock = threading.Lock()


def shared_cluster() -> PostgresCluster:
    """The process's one cluster, started on first use and stopped at interpreter exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PostgresCluster()
        _shared.start()
        return _shared


@atexit.register
def _stop_live() -> None:
    """Do not leave a postmaster behind when a test session or demo exits without stopping it."""
    for cluster in list(_live):
        with contextlib.suppress(Exception):
            cluster.stop()


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.localpostgres", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("start",))
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    cluster = PostgresCluster(port=args.port)
    try:
        cluster.start()
        url = cluster.url("postgres", driver="")
        print(f"PostgreSQL at {url}; log {cluster.log_path}; Ctrl-C stops it", flush=True)
        while cluster.running:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    except PostgresError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
