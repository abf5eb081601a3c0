"""main.py pauses the cyclic garbage collector while it imports and builds the function (cold start) and leaves it
on afterwards, with what start-up made frozen (gc.freeze): a function must never serve with the collector off."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from devtools.localfunction import REPO

PROBE = "import gc, json, main; print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))"


def test_main_leaves_the_collector_on_with_start_up_frozen() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "GOOGLE_", "GCE_METADATA", "DAG_"))}
    env.update({"AIRFLOW_URI": "http://127.0.0.1:9", "DAG_ID": "d", "AIRFLOW_AUTH": "bearer", "AIRFLOW_TOKEN": "t"})
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, frozen = json.loads(done.stdout.strip().splitlines()[-1])
    assert enabled is True
    assert frozen > 10_000  # the modules, classes and functions start-up created
