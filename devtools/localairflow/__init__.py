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

from devtools.localairflow.common import (
    AIRFLOW_VERSIONS,
    AUTH_MODES,
    DEFAULT_DAGS_FOLDER,
    PASSWORD_USERS,
    AirflowServerError,
    Auth,
    cache_dir,
)
from devtools.localairflow.rest import AirflowApi, Response, function_env
from devtools.localairflow.server import DATABASES, AirflowServer, Database
from devtools.localairflow.venvs import ensure_airflow_venv, ensure_postgres_driver, venv_installed

__all__ = [
    "AIRFLOW_VERSIONS",
    "AUTH_MODES",
    "DATABASES",
    "DEFAULT_DAGS_FOLDER",
    "PASSWORD_USERS",
    "AirflowApi",
    "AirflowServer",
    "AirflowServerError",
    "Auth",
    "Database",
    "Response",
    "cache_dir",
    "ensure_airflow_venv",
    "ensure_postgres_driver",
    "function_env",
    "venv_installed",
]
