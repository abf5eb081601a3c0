"""devtools/tiers.py: every step of run-tests.sh runs even when one before it failed, and the exit status says so."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import pytest

from devtools import tiers


def test_a_failed_tier_does_not_stop_the_later_ones() -> None:
    ran: list[str] = []
    plan = tiers.steps()

    def run(argv: Sequence[str]) -> int:
        ran.append(" ".join(argv))
        return 1 if "not (integration or load or bench)" in argv else 0  # the fast tier fails

    results = tiers.run_steps(plan, run=run, clock=iter(range(100)).__next__)
    assert [result.step.name for result in results] == [
        "ruff", "ruff format", "mypy", "fast tier", "integration tier", "load tier", "bench tier",
    ]  # fmt: skip
    assert len(ran) == len(plan)
    text = tiers.summary(results)
    assert "fast tier" in text and "FAILED (exit 1)" in text
    assert text.splitlines()[-1] == "==> FAILED: fast tier"
    assert text.count("passed") == 6


def test_the_tier_expressions_cover_every_test_once() -> None:
    """Each marker combination lands in exactly one tier, so no test runs twice and none is left out."""
    import itertools

    names = ("integration", "load", "bench")
    for values in itertools.product((False, True), repeat=3):
        marks = dict(zip(names, values, strict=True))
        hits = [name for name, expression in tiers.TIERS if eval(expression, {}, marks)]  # noqa: S307
        assert len(hits) == 1, (marks, hits)
        assert eval(tiers.EVERY_TIER, {}, marks)  # noqa: S307


@pytest.mark.parametrize(("codes", "status"), [((0, 0), 0), ((0, 3), 1), ((2, 0), 1)])
def test_exit_status_is_1_when_any_step_failed(codes: tuple[int, int], status: int) -> None:
    script = "import sys, devtools.tiers as t; sys.exit(t.main(['--co']))"
    plan = [
        f"tiers.Step('s{i}', ({sys.executable!r}, '-c', 'raise SystemExit({code})'))" for i, code in enumerate(codes)
    ]
    patched = f"import devtools.tiers as tiers; tiers.steps = lambda args: [{', '.join(plan)}]; " + script
    done = subprocess.run([sys.executable, "-c", patched], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == status, done.stderr
    assert "==> summary" in done.stderr
    assert "==> s0" in done.stderr and "==> s1" in done.stderr  # both steps ran


def test_narrowed_run_is_one_pytest_over_every_tier() -> None:
    plan = tiers.steps(["-k", "airflow3"])
    assert plan[-1].argv[-4:] == ("-m", tiers.EVERY_TIER, "-k", "airflow3")
    assert len(plan) == 4


def test_each_tier_prints_its_slowest_tests() -> None:
    """CI must finish well inside its limit: each tier's output names where its time went."""
    for step in tiers.steps()[3:]:
        assert "--durations" in step.argv and step.argv[step.argv.index("--durations") + 1] == str(tiers.SLOWEST_SHOWN)
