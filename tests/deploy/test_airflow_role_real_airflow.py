"""The role deploy/airflow-role.sh creates, applied to a real Airflow 2.11 (FAB auth manager, API v1, basic auth).

The commands and the request body are the script's own ``--dry-run`` listing, replayed against the local server:
``gcloud composer environments run ENV ... SUB -- ARGS`` becomes ``airflow SUB ARGS`` (what Composer runs), and the
``--method api`` body is POSTed to ``/api/v1/roles`` as the admin. A user holding only that role must be able to
trigger the DAGs it names, read them and their runs, and be refused everything else Op could do.

Airflow 3 is not covered: the local Airflow 3 runs the simple auth manager (no roles); Composer 3 uses the FAB
provider, whose permission check for triggering is the same code (see docs/security.md).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
import requests

from devtools.localairflow import AirflowServer, ensure_airflow_venv

from .script_runner import REPO_ROOT, ScriptRunner, commands_of

pytestmark = pytest.mark.integration

ALLOWED, OTHER = "dagtrigger_example", "dagtrigger_other"
COMPOSER = ["--project", "my-proj", "--composer-env", "prod", "--region", "us-central1"]


@pytest.fixture(scope="module")
def airflow2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowServer]:
    server = AirflowServer(2, tmp_path_factory.mktemp("airflow2-roles"), auth="password")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _airflow_cli(server: AirflowServer, args: list[str]) -> str:
    venv = ensure_airflow_venv(2)
    env = server._env(venv)  # the server's own settings (DB, home), as its CLI needs them
    proc = subprocess.run(
        [str(venv / "bin" / "airflow"), *args], env=env, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, f"airflow {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _as_composer_would_run(listing: str) -> list[list[str]]:
    """``gcloud composer environments run ENV --project=P --location=L SUB -- ARGS`` → ``[SUB, ARGS...]``."""
    out = []
    for cmd in commands_of(listing):
        assert cmd[:4] == ["gcloud", "composer", "environments", "run"], cmd
        rest = [w for w in cmd[5:] if not w.startswith(("--project=", "--location="))]
        out.append([w for w in rest if w != "--"])
    return out


def _user(server: AirflowServer, name: str, role: str) -> requests.Session:
    _airflow_cli(server, ["users", "create", "-u", name, "-e", f"{name}@example.com", "-f", name, "-l", "-",
                          "-r", role, "-p", f"{name}-pw"])  # fmt: skip
    session = requests.Session()
    session.auth = (name, f"{name}-pw")
    return session


def _trigger(server: AirflowServer, session: requests.Session, dag_id: str, run_id: str) -> int:
    url = f"{server.url}/api/v1/dags/{dag_id}/dagRuns"
    return session.post(url, json={"dag_run_id": run_id, "conf": {"k": 1}}, timeout=30).status_code


def _assert_only_triggering(server: AirflowServer, session: requests.Session, run_id: str, *, all_dags: bool) -> None:
    base = f"{server.url}/api/v1"
    assert _trigger(server, session, ALLOWED, run_id) == 200
    assert server.get_run(ALLOWED, run_id) is not None, "the run exists in Airflow"
    assert _trigger(server, session, ALLOWED, run_id) == 409, "a redelivery is still recognised"
    run = f"{base}/dags/{ALLOWED}/dagRuns/{run_id}"
    assert session.get(run, timeout=30).status_code == 200, "the function reads its run back after a 409"
    assert session.get(f"{base}/dags/{ALLOWED}", timeout=30).status_code == 200, "check reads the DAG"
    assert _trigger(server, session, OTHER, run_id) == (200 if all_dags else 403)
    # What Op may do and this role may not:
    assert session.delete(f"{base}/dags/{ALLOWED}/dagRuns/{run_id}", timeout=30).status_code == 403
    clear = {"dry_run": True, "only_failed": False}
    assert session.post(f"{base}/dags/{ALLOWED}/clearTaskInstances", json=clear, timeout=30).status_code == 403
    for listing in ("connections", "variables", "pools", "users", "roles"):
        assert session.get(f"{base}/{listing}", timeout=30).status_code == 403, listing


def test_cli_role_for_one_dag(airflow2: AirflowServer, run_script: ScriptRunner) -> None:
    listing = run_script("airflow-role.sh", *COMPOSER, "--role", "dt_one", "--dag-id", ALLOWED)
    assert listing.returncode == 0, listing.stderr
    commands = _as_composer_would_run(listing.stdout)
    assert commands[0] == ["sync-perm", "--include-dags"]
    for args in commands:
        _airflow_cli(airflow2, args)
    _assert_only_triggering(airflow2, _user(airflow2, "dt_one_user", "dt_one"), "role_test_one", all_dags=False)


def test_api_role_for_every_dag(airflow2: AirflowServer, run_script: ScriptRunner) -> None:
    listing = run_script("airflow-role.sh", *COMPOSER, "--role", "dt_all", "--method", "api")
    assert listing.returncode == 0, listing.stderr
    (body,) = [line.split(" holds: ", 1)[1] for line in listing.stdout.splitlines() if "<BODY_FILE> holds:" in line]
    answer = airflow2.request("POST", "/api/v1/roles", json.loads(body), user="admin")
    assert answer.status == 200, answer.body
    _assert_only_triggering(airflow2, _user(airflow2, "dt_all_user", "dt_all"), "role_test_all", all_dags=True)


def test_op_can_do_what_the_narrow_role_cannot(airflow2: AirflowServer) -> None:
    """The control: the refusals above come from the role, not from the requests being wrong."""
    assert (
        airflow2.request("POST", f"/api/v1/dags/{ALLOWED}/dagRuns", {"dag_run_id": "op_run"}, user="op").status == 200
    )
    clear = {"dry_run": True, "only_failed": False}
    assert airflow2.request("POST", f"/api/v1/dags/{ALLOWED}/clearTaskInstances", clear, user="op").status == 200
    assert airflow2.request("GET", "/api/v1/connections", user="op").status == 200
    assert airflow2.request("DELETE", f"/api/v1/dags/{ALLOWED}/dagRuns/op_run", user="op").status == 204
