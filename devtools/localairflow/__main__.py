"""``python -m devtools.localairflow``: ``ensure`` builds the cached venv; ``start`` serves in the foreground."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from devtools.localairflow.common import (
    AIRFLOW_VERSIONS,
    AUTH_MODES,
    DEFAULT_DAGS_FOLDER,
    PASSWORD_USERS,
    AirflowServerError,
    _tail,
)
from devtools.localairflow.server import DATABASES, AirflowServer, Database
from devtools.localairflow.venvs import ensure_airflow_venv
from devtools.localpostgres import PostgresError


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
    start.add_argument(
        "--scheduler",
        action="store_true",
        help="also run the scheduler (Airflow 3: and dag-processor, triggerer) so runs execute; implies PostgreSQL",
    )
    start.add_argument(
        "--database",
        choices=DATABASES,
        default=None,
        help="sqlite (default without --scheduler) or postgres (a local cluster, default with --scheduler; "
        "needs PostgreSQL's server binaries: bash devtools/ensure-postgres.sh)",
    )
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
        database: Database = args.database or ("postgres" if args.scheduler else "sqlite")
        server = AirflowServer(
            args.major,
            workdir,
            port=args.port,
            auth=args.auth,
            dags_folder=args.dags_folder,
            database=database,
            scheduler=args.scheduler,
        )
        try:
            server.start()
            users = ", ".join(f"{u}/{p} ({r})" for u, (p, r) in PASSWORD_USERS.items())
            print(
                f"Airflow {server.version} at {server.url}{server.api_prefix} "
                f"auth={server.auth}{' users ' + users if server.auth == 'password' else ''}; {database}"
                f"{' with the scheduler (runs execute)' if args.scheduler else ' (no scheduler: runs stay queued)'}; "
                f"log {server.log_path}; Ctrl-C stops it",
                flush=True,
            )
            while server.running:
                time.sleep(1)
            print(f"Airflow server exited; log {server.log_path}:\n{_tail(server.log_path)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        except (AirflowServerError, PostgresError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
