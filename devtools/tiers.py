"""Every check of ``bash devtools/run-tests.sh``, one after the other, each run even when an earlier one failed.

A red fast tier must not hide whether integration, load and bench pass: every step runs, a summary names each one
with its result and time, and the exit status is 1 if any step failed (0 only when all passed).

    python -m devtools.tiers              # ruff, ruff format, mypy, then the fast, integration, load, bench tiers
    python -m devtools.tiers -k airflow3  # the lint steps, then one pytest run over every tier, narrowed by the args
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The tiers are pytest markers given by directory (tests/conftest.py). The expressions do not overlap, so no test runs
# twice, and each tier always has tests (pytest never exits with 5, "no tests collected").
TIERS: tuple[tuple[str, str], ...] = (
    ("fast", "not (integration or load or bench)"),
    ("integration", "integration and not (load or bench)"),
    ("load", "load"),
    ("bench", "bench and not load"),
)
EVERY_TIER = "integration or load or bench or not (integration or load or bench)"


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    step: Step
    exit_code: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


SLOWEST_SHOWN = 10


def steps(pytest_args: Sequence[str] = ()) -> list[Step]:
    """Lint, format and types, then each tier; with ``pytest_args`` one pytest run over every tier, narrowed by them
    (a path, -k, -x …), so a narrowing never leaves a tier empty."""
    python = sys.executable
    lint = [
        Step("ruff", ("ruff", "check", ".")),
        Step("ruff format", ("ruff", "format", "--check", ".")),
        Step("mypy", ("mypy",)),
    ]
    if pytest_args:
        return [*lint, Step("pytest (narrowed)", (python, "-m", "pytest", "-m", EVERY_TIER, *pytest_args))]
    # The slowest tests of each tier are printed, so a CI run that creeps towards its time limit says where it went.
    timed = ("--durations", str(SLOWEST_SHOWN))
    return [*lint, *(Step(f"{name} tier", (python, "-m", "pytest", "-m", marker, *timed)) for name, marker in TIERS)]


def run_steps(
    plan: Sequence[Step],
    run: Callable[[Sequence[str]], int] = lambda argv: subprocess.call(list(argv)),
    clock: Callable[[], float] = time.monotonic,
) -> list[Result]:
    """Run every step, whatever the ones before it gave."""
    results = []
    for step in plan:
        print(f"==> {step.name}", file=sys.stderr, flush=True)
        began = clock()
        code = run(step.argv)
        results.append(Result(step, code, clock() - began))
    return results


def summary(results: Sequence[Result]) -> str:
    """One line per step (passed / FAILED with its exit code, seconds), then the verdict."""
    width = max(len(result.step.name) for result in results)
    lines = ["", "==> summary"]
    for result in results:
        verdict = "passed" if result.passed else f"FAILED (exit {result.exit_code})"
        lines.append(f"  {result.step.name:<{width}}  {verdict:<16} {result.seconds:7.1f} s")
    failed = [result.step.name for result in results if not result.passed]
    lines.append(f"==> {'FAILED: ' + ', '.join(failed) if failed else 'all passed'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    results = run_steps(steps(args))
    print(summary(results), file=sys.stderr, flush=True)
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
