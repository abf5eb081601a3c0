"""Test tiers. A bare ``pytest`` runs the fast tier; the slow tiers run when asked for.

Tiers are markers (registered in pyproject.toml), given here by directory so no test file has to remember them:
``tests/integration`` → ``integration`` (real Airflow, functions-framework, metadata server), ``tests/load`` →
``load``, ``tests/bench`` → ``bench``. A test elsewhere that starts real servers marks itself ``integration``.

Selection, in order: ``-m EXPR`` is pytest's own and wins; otherwise a test of a slow tier runs only when its
directory, file or node id is named on the command line (``pytest tests/integration -k airflow3``). So ``pytest``
and ``pytest tests`` are the fast tier (what to run after every change), and naming what you want never ends in
"no tests ran" (exit code 5). ``bash devtools/run-tests.sh`` runs every tier, one ``-m`` expression each.

``dagtrigger`` is imported as an installed package (``pip install -e .``, done by devtools/bootstrap.sh); the
repository root is on ``sys.path`` through pytest's rootdir handling (``tests`` is a package), which is how
``tests.support``, ``devtools`` and ``bench`` import.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SLOW_TIERS = {TESTS / "integration": "integration", TESTS / "load": "load", TESTS / "bench": "bench"}


def _tier_directory(path: Path) -> Path | None:
    """The slow tier directory ``path`` lies in, if any."""
    return next((d for d in SLOW_TIERS if path == d or d in path.parents), None)


def _is_slow(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(tier) is not None for tier in SLOW_TIERS.values())


def _named(config: pytest.Config) -> list[Path]:
    """Paths named on the command line that ask for slow tests: a file or node id anywhere, or a slow tier directory."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return []  # testpaths or the current directory: nothing was named
    named = []
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
        if path.is_file() or "::" in arg or _tier_directory(path) is not None:
            named.append(path)
    return named


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier_dir = _tier_directory(item.path)
        if tier_dir is not None:
            item.add_marker(SLOW_TIERS[tier_dir])
    if config.option.markexpr:
        return
    named = _named(config)
    keep, drop = [], []
    for item in items:
        wanted = not _is_slow(item) or any(item.path == p or p in item.path.parents for p in named)
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
