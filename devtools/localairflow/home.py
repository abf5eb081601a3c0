"""An Airflow home: the whole environment of every Airflow subprocess and the files its auth mode needs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from devtools.localairflow.common import _JWT_SECRET, _PARALLELISM, _SECRET_KEY, PASSWORD_USERS, Auth
from devtools.ports import HOST


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
