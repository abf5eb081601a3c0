""".gcloudignore ships only the function: main.py, requirements.txt, dagtrigger/ (and a root routes file).

The rules are evaluated with pathspec's .gitignore implementation, walking the tree the way git and
gcloud do (an ignored directory is not entered). Where the Google Cloud CLI is installed, its own
evaluator (`gcloud meta list-files-for-upload`, local, no network) must agree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .script_runner import REPO_ROOT

pathspec = pytest.importorskip("pathspec", reason="pip install -r tests/deploy/requirements.txt")

RULES = REPO_ROOT / ".gcloudignore"


def shipped(root: Path) -> set[str]:
    """Files under ``root`` that the .gcloudignore in ``root`` lets through (posix paths)."""
    spec = pathspec.GitIgnoreSpec.from_lines((root / ".gcloudignore").read_text(encoding="utf-8").splitlines())
    out: set[str] = set()
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = Path(directory).relative_to(root)
        prefix = "" if rel_dir == Path(".") else rel_dir.as_posix() + "/"
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(f"{prefix}{d}/"))
        out.update(f"{prefix}{f}" for f in filenames if not spec.match_file(f"{prefix}{f}"))
    return out


def gcloud_list(root: Path, tmp_path: Path) -> set[str] | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    env = {
        **os.environ,
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud-config"),  # never the user's configuration
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true",
    }
    proc = subprocess.run(
        [gcloud, "meta", "list-files-for-upload", str(root)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def make_tree(root: Path, files: list[str]) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n", encoding="utf-8")
    shutil.copyfile(RULES, root / ".gcloudignore")


NEEDED = [
    "main.py",
    "requirements.txt",
    "dagtrigger/__init__.py",
    "dagtrigger/pipeline.py",
    "dagtrigger/sub/mod.py",
    "routes.yaml",
]
NOT_NEEDED = [
    "README.md",
    "pyproject.toml",
    "requirements-dev.txt",
    "tests/__init__.py",
    "tests/unit/test_x.py",
    "tests/deploy/requirements.txt",
    "bench/run.py",
    "devtools/localairflow/server.py",
    "deploy/deploy-storage.sh",
    "deploy/terraform/main.tf",
    "docs/index.md",
    ".venv/lib/python3.11/site-packages/x.py",
    "venv/bin/python",
    ".git/HEAD",
    ".gitignore",
    ".ci/run",
    ".pytest_cache/v/x",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/x",
    ".hypothesis/examples/x",
    "__pycache__/main.cpython-311.pyc",
    "dagtrigger/__pycache__/pipeline.cpython-311.pyc",
    "dagtrigger/pipeline.pyc",
    "dagtrigger/.DS_Store",
    "dagtrigger/pipeline.py~",
    "dagtrigger/.pipeline.py.swp",
    "main.py.orig",
    "routes.yaml.bak",
    "tests/routes.yaml",
]


def test_synthetic_tree_ships_exactly_the_function(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root, NEEDED + NOT_NEEDED)
    assert shipped(root) == set(NEEDED)


def test_gcloud_agrees_on_the_synthetic_tree(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    make_tree(root, NEEDED + NOT_NEEDED)
    listed = gcloud_list(root, tmp_path)
    if listed is None:
        pytest.skip("the Google Cloud CLI is not installed")
    assert listed == set(NEEDED)


def test_real_repository_ships_main_requirements_and_the_package() -> None:
    files = shipped(REPO_ROOT)
    package = {
        p.relative_to(REPO_ROOT).as_posix()
        for p in (REPO_ROOT / "dagtrigger").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert package, "dagtrigger/ has no modules?"
    assert {"main.py", "requirements.txt"} | package <= files
    for path in files:
        top = path.split("/", 1)[0]
        assert top in {"main.py", "requirements.txt", "dagtrigger", "routes.yaml", "routes.yml", "routes.json"}, path
        assert "__pycache__" not in path and not path.endswith((".pyc", ".pyo"))
    for top in ("tests", "bench", "devtools", "deploy", ".venv", ".git", "docs"):
        assert not any(p == top or p.startswith(top + "/") for p in files), top
    assert "README.md" not in files and "pyproject.toml" not in files and ".gcloudignore" not in files


def test_gcloud_agrees_on_the_real_repository(tmp_path: Path) -> None:
    listed = gcloud_list(REPO_ROOT, tmp_path)
    if listed is None:
        pytest.skip("the Google Cloud CLI is not installed")
    assert listed == shipped(REPO_ROOT)


def test_rules_are_an_allowlist() -> None:
    lines = [line.strip() for line in RULES.read_text(encoding="utf-8").splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "/*", "ignore everything at the top level first"
    assert {"!/main.py", "!/requirements.txt", "!/dagtrigger/"} <= set(rules)
    assert rules.index("__pycache__/") > rules.index("!/dagtrigger/"), "caches stay ignored inside the package"
