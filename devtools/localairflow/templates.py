"""Template databases: a metadata DB migrated once (SQLite: per version, in the cache; PostgreSQL: per cluster) and
copied for each server, so a server starts without its own ``db migrate``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path

from devtools.localairflow.common import (
    _CLI_TIMEOUT_S,
    _TEMPLATE_REVISION,
    _TEMPLATE_TIMEOUT_S,
    PASSWORD_USERS,
    AirflowServerError,
    _locked,
    _log,
    _run_logged,
    _version,
    cache_dir,
)
from devtools.localairflow.home import _airflow_env, _write_home_files
from devtools.localpostgres import PostgresCluster
from devtools.ports import free_port


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
        staging = f"{name}_staging"
        cluster.drop_database(staging)
        cluster.create_database(staging)
        # A plain-SQL dump of the first migration, in the cache: every later cluster (each demo, each test session)
        # restores it in a second or two instead of migrating again.
        dump = cache_dir() / "templates" / f"{name}-postgres.sql"
        if dump.is_file():
            _log(f"restoring the PostgreSQL template database for Airflow {version} from {dump}")
            cluster.restore(staging, dump.read_text(encoding="utf-8"))
            cluster.psql(f"ALTER DATABASE {staging} RENAME TO {name}")
            return name
        _log(f"migrating a PostgreSQL template database for Airflow {version} (first time only, 10-30 s)")
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
        dump.parent.mkdir(parents=True, exist_ok=True)
        staged = dump.with_name(f"{dump.name}.{os.getpid()}.tmp")
        staged.write_text(cluster.dump(staging), encoding="utf-8")
        os.replace(staged, dump)
        cluster.psql(f"ALTER DATABASE {staging} RENAME TO {name}")
        return name
