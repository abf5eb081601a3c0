"""The test suite's own rules, checked so they stay true as tests are added (see tests/conftest.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
CONFTEST_IMPORT = re.compile(r"^\s*(from\s+(\.+conftest|tests(\.\w+)*\.conftest)\s+import|import\s+\S*conftest)", re.M)


def test_no_test_imports_a_conftest() -> None:
    # A conftest is pytest's: importing it runs it a second time under another name. Shared code goes in a module.
    offenders = [
        str(path.relative_to(REPO))
        for path in TESTS.rglob("*.py")
        if CONFTEST_IMPORT.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


SYS_PATH_EDIT = re.compile(r"\bsys\.path\s*(?:\.\s*(?:insert|append|extend)\s*\(|\[[^\]]*\]\s*=|\+=|=)")


def test_nothing_edits_sys_path_to_import_the_package() -> None:
    # dagtrigger is installed (pip install -e .); tests.support, devtools, bench and loadtest import from the
    # repository root. Every Python file of the suite and the tools is read, not one conftest.
    files = [path for folder in ("tests", "devtools", "bench", "loadtest") for path in (REPO / folder).rglob("*.py")]
    assert len(files) > 50
    mine = Path(__file__).resolve()  # holds the pattern's own examples below
    offenders = [str(p.relative_to(REPO)) for p in files if p != mine and SYS_PATH_EDIT.search(p.read_text())]
    assert offenders == []
    assert SYS_PATH_EDIT.search("sys.path.insert(0, str(ROOT))")  # the pattern finds what it is for
    assert SYS_PATH_EDIT.search("sys.path[:0] = [root]") and not SYS_PATH_EDIT.search("print(sys.path)")


def test_every_tier_marker_is_registered() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    markers = {m.split(":")[0] for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    assert {"integration", "load", "bench"} <= markers
    assert "--strict-markers" in config["tool"]["pytest"]["ini_options"]["addopts"]


def _collected(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_slow_tests_run_only_when_named() -> None:
    # One collection (a subprocess costs seconds): tests/fuzz is named as a directory, so its few tests marked
    # integration stay out; a file of tests/integration is named, so its tests are in.
    collected = _collected("tests/fuzz", "tests/integration/test_event_formats.py")
    assert any(n.startswith("tests/fuzz/") for n in collected)
    assert not any("::test_real_process" in n for n in collected)
    assert any(n.startswith("tests/integration/test_event_formats.py::") for n in collected)
