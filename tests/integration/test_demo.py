"""`bash devtools/run-local.sh` as a test: the scheduler-backed demo must end with the run `success` and print the
task's log line showing the conf it received (read through Airflow's task-log API); `--no-scheduler` keeps the fast
SQLite path, where the one run stays queued."""

from __future__ import annotations

import pytest

from devtools import demo

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("major", [2, 3])
def test_demo_runs_the_dag_to_success(major: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--major", str(major), "--object", f"incoming/demo-test-{major}/orders.csv"]) == 0
    out = capsys.readouterr().out
    assert ": success" in out, out
    log_line = next(line for line in out.splitlines() if line.startswith("--- task print_conf log:"))
    assert f"incoming/demo-test-{major}/orders.csv" in log_line, log_line


def test_demo_without_scheduler_leaves_one_queued_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--no-scheduler"]) == 0
    out = capsys.readouterr().out
    assert '"state": "queued"' in out, out
    assert "--- task" not in out, out
