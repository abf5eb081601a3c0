"""Helpers for the deploy/ tests (a module, so tests import it, not a conftest): run a script, read its "+ " command
listing, fake gcloud.

No test talks to Google Cloud. Dry runs get a *poisoned* gcloud first on PATH (any call fails the
test); live-mode runs get a *recording* gcloud that logs its argv and answers look-ups with canned
values, so the commands a script really runs can be compared with what its --dry-run printed.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO_ROOT / "deploy"
SCRIPTS = (
    "deploy-storage.sh",
    "deploy-pubsub.sh",
    "deploy-http.sh",
    "iam.sh",
    "register-airflow-user.sh",
    "network.sh",
    "airflow-role.sh",
    "deploy-sweep.sh",
)

# A fake command: logs argv as one JSON line to $FAKE_LOG (tagged with its own name), then answers
# from $FAKE_ANSWERS: {"argv prefix": [exit_code, stdout]}, the longest matching prefix wins.
FAKE_COMMAND = """\
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps([name, *args]) + "\\n")
if os.environ.get("FAKE_POISON"):
    sys.stderr.write(f"{name} must not run in --dry-run\\n")
    sys.exit(97)
line = " ".join([name, *args])
answers = json.loads(os.environ.get("FAKE_ANSWERS", "{}"))
best = max((p for p in answers if line.startswith(p)), key=len, default=None)
if best is None:
    sys.exit(0)
code, out = answers[best]
if out:
    sys.stdout.write(out + "\\n")
sys.exit(code)
"""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    calls: list[list[str]]

    @property
    def commands(self) -> list[list[str]]:
        """The "+ " lines of the listing, split like a POSIX shell would."""
        return commands_of(self.stdout)

    def command(self, *prefix: str) -> list[str]:
        """The one listed command that starts with ``prefix``."""
        found = [c for c in self.commands if c[: len(prefix)] == list(prefix)]
        assert len(found) == 1, f"expected one command starting with {prefix}, got {found}\n{self.stdout}"
        return found[0]


def commands_of(listing: str) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in listing.splitlines() if line.startswith("+ ")]


def _fake_bin(directory: Path, names: Iterable[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = directory / name
        path.write_text(f"#!{sys.executable}\n{FAKE_COMMAND}", encoding="utf-8")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return directory


class ScriptRunner:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.bin = _fake_bin(tmp_path / "fakebin", ["gcloud", "curl"])
        self.runs = 0

    def __call__(
        self,
        script: str,
        *args: str,
        dry_run: bool = True,
        answers: Mapping[str, tuple[int, str]] | None = None,
    ) -> Result:
        self.runs += 1
        log = self.tmp_path / f"calls-{self.runs}.jsonl"
        env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.tmp_path),
            "LC_ALL": "C.UTF-8",
            "FAKE_LOG": str(log),
            "FAKE_ANSWERS": json.dumps(answers or {}),
        }
        argv = ["bash", str(DEPLOY_DIR / script), *args]
        if dry_run:
            env["FAKE_POISON"] = "1"
            argv.append("--dry-run")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=self.tmp_path)
        calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, calls)
