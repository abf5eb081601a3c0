"""A run interrupted with a PostgreSQL cluster and an emulator running: the next start reaps both (issue 18 item 3).

The owner is a real interpreter that starts a real cluster (pg_ctl: the postmaster in its own session) and a real
emulator process through devtools, then dies without stopping them, as a killed test run does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devtools import processes
from devtools.ports import wait_port_open

OWNER = """
import os, sys
from pathlib import Path
from devtools.localpostgres import PostgresCluster
from devtools.storage_emulator import _fake_gcs
cluster = PostgresCluster()
cluster.start()
emulator = _fake_gcs(Path(sys.argv[1]) / "emulator.log")
print(cluster.port, cluster._postmaster, cluster.root, emulator.port, flush=True)
os._exit(0)
"""


def test_a_killed_runs_cluster_and_emulator_are_reaped_at_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGTRIGGER_CACHE", str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(OWNER), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pg_port, postmaster, root, emulator_port = done.stdout.split()
    assert wait_port_open(int(pg_port), 1.0) and wait_port_open(int(emulator_port), 1.0)
    assert processes.group_members(int(postmaster))  # the cluster outlived its owner
    assert len(list(processes.markers_dir().glob("*.json"))) == 2

    reaped = processes.reap_leftovers()

    assert sorted(marker.what.split()[0] for marker in reaped) == ["PostgreSQL", "fake-gcs-server"]
    assert processes.group_members(int(postmaster)) == []
    assert not wait_port_open(int(pg_port), 0.5)
    assert not wait_port_open(int(emulator_port), 0.5)
    assert not Path(root).exists()  # the cluster's data directory went with it
    assert processes.reap_leftovers() == []
