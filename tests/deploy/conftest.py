"""The deploy/ tests' fixture; the helpers live in script_runner.py (tests never import a conftest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .script_runner import ScriptRunner


@pytest.fixture
def run_script(tmp_path: Path) -> ScriptRunner:
    return ScriptRunner(tmp_path)
