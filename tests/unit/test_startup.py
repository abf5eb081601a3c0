"""Start-up: bad settings stop the process with the variable's name; heavy libraries are not imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DAG_ID", "ROUTES"))}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_importing_main_does_not_load_storage_or_yaml() -> None:
    code = "import sys, main; print(sorted(m for m in ('google.cloud.storage', 'yaml') if m in sys.modules))"
    result = run(code, AIRFLOW_URI="http://127.0.0.1:9", DAG_ID="d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# What a DAG_ID deployment or plain routes never use: imported where used, since at a cold start every import of main
# runs before the port opens (~6 ms of CPU for these, measured with python -X importtime).
DEFERRED = (
    "dagtrigger.batch",
    "dagtrigger.deadletter",
    "dagtrigger.manifest",
    "dagtrigger.sender_auth",
)
LOADED = "import sys, main; print(sorted({m.rpartition('.')[0] or m for m in sys.modules if m.startswith(%r)}))"


def _deferred_loaded(**env: str) -> list[str]:
    result = run(LOADED % (DEFERRED,), AIRFLOW_URI="http://127.0.0.1:9", **env)
    assert result.returncode == 0, result.stderr
    loaded = {name for name in result.stdout.strip().strip("[]").replace("'", "").split(", ") if name}
    return sorted(d for d in DEFERRED if any(m == d or m.startswith(d + ".") for m in loaded))


def test_a_plain_deployment_does_not_import_batches_dead_letters_manifests_or_sender_checks(tmp_path: Path) -> None:
    assert _deferred_loaded(DAG_ID="d") == []
    routes = tmp_path / "routes.json"
    routes.write_text(
        '{"routes": [{"name": "a", "dag_id": "d"}, {"name": "b", "dag_id": "e", "match": {"name": {"glob": "x/*"}}}]}'
    )
    assert _deferred_loaded(ROUTES_FILE=str(routes)) == []
    # The check can see them: a deployment that uses dead letters loads them at start-up.
    assert _deferred_loaded(DAG_ID="d", DEAD_LETTER_URI="gs://bucket-dl/prefix") == ["dagtrigger.deadletter"]


def test_a_bad_setting_stops_the_import_with_its_name() -> None:
    result = run("import main", AIRFLOW_URI="http://127.0.0.1:9", DAG_ID="d", AIRFLOW_API_VERSION="v9")
    assert result.returncode != 0
    assert "AIRFLOW_API_VERSION" in result.stderr and "example: AIRFLOW_API_VERSION=auto" in result.stderr


def test_a_bad_routes_file_names_the_route_and_field(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - name: orders\n    dag_id: d\n    match: {size: {min: -5}}\n")
    result = run("import main", AIRFLOW_URI="http://127.0.0.1:9", ROUTES_FILE=str(routes))
    assert result.returncode != 0
    assert "route 'orders'.match.size.min" in result.stderr


def test_every_dataclass_main_loads_has_a_docstring() -> None:
    """Without one, @dataclass builds a docstring from inspect.signature at class creation (40-140 µs each, before
    the port opens); with one, the reader also learns what the value is."""
    code = (
        "import dataclasses, sys, main\n"
        "print(sorted(f'{m}.{n}' for m, mod in list(sys.modules.items()) if m.startswith('dagtrigger')\n"
        "    for n, c in vars(mod).items() if isinstance(c, type) and dataclasses.is_dataclass(c)\n"
        "    and c.__module__ == m and (c.__doc__ or '').startswith(c.__name__ + '(')))"
    )
    result = run(code, AIRFLOW_URI="http://127.0.0.1:9", DAG_ID="d")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# What only serves events: gunicorn's master validates the configuration and binds; the worker imports these right
# after the fork (warm-up) or at its first event. ~8 ms of CPU before the port opened (python -X importtime).
STAGES = ("dagtrigger.conf", "dagtrigger.events", "dagtrigger.render", "dagtrigger.report", "dagtrigger.routing")
STAGES += ("dagtrigger.run_id", "dagtrigger.trigger", "dagtrigger.signature", "dagtrigger.templates")


def _loaded(code: str, **env: str) -> list[str]:
    result = run(code + f"\nimport sys; print(sorted(m for m in {STAGES!r} if m in sys.modules))", **env)
    assert result.returncode == 0, result.stderr
    return [m.strip("' ") for m in result.stdout.strip().strip("[]").split(",") if m.strip()]


def test_the_master_does_not_import_the_per_event_stages(tmp_path: Path) -> None:
    assert _loaded("import main", AIRFLOW_URI="http://127.0.0.1:9", DAG_ID="d") == []
    # The worker's warm-up loads them (the list in pipeline.py is the one it uses).
    loaded = _loaded(
        "import main; from dagtrigger import pipeline; pipeline.load_stages()",
        AIRFLOW_URI="http://127.0.0.1:9",
        DAG_ID="d",
    )
    assert set(STAGES) - set(loaded) == {"dagtrigger.signature", "dagtrigger.templates"}
    # A route with a template loads templates to validate it at start-up; a webhook-signed route loads signature.
    routes = tmp_path / "routes.json"
    routes.write_text('{"routes": [{"name": "a", "dag_id": "d", "conf": {"f": "data.name"}}]}')
    assert _loaded("import main", AIRFLOW_URI="http://127.0.0.1:9", ROUTES_FILE=str(routes)) == ["dagtrigger.templates"]
