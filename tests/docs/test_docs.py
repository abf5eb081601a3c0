"""Every fenced code block in README.md and docs/*.md is exercised, so the docs cannot drift from the code.

The rules, by info string (the word after the opening fence; the table in docs/README.md says the same):

- ``bash``: each command must run as written. A repository script or path must exist; ``deploy/*.sh`` runs with
  ``--dry-run`` against a gcloud that fails if called, and must exit 0; ``python -m MODULE`` (a module of this
  repository) must list every ``--option`` used in ``python -m MODULE <subcommands> --help``; any other repository
  script must mention each ``--option`` in its text or in the ``--help`` of a module it runs with ``python -m``;
  leading ``NAME=value`` words must pass ``settings_from_env``. Other programs must be in ``EXTERNAL`` (not run).
  ``...``/``…`` placeholders and pipes are refused: write a complete command, or use ``text``.
- ``yaml`` / ``json``: a routing file; ``load_rules`` (what ROUTES_FILE uses) must accept it.
  ``yaml invalid`` / ``json invalid``: it must refuse it.
- ``env``: ``NAME=value`` lines; ``settings_from_env`` must accept them. ``env invalid``: it must refuse them.
- ``python``: must compile.
- ``json output``: an example of output; must be valid JSON.
- ``text``: not exercised (output, diagrams, synopses).

Anything else — no info string, an unknown one, an indented code block — fails, so a new block cannot slip in
untested. Relative links (files and ``#anchors``) must resolve too.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from dagtrigger.exceptions import ConfigError
from dagtrigger.rules import load_rules
from dagtrigger.settings import settings_from_env

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = (REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")))
SET_UP_COMMANDS = ("bash devtools/run-local.sh", "bash devtools/run-tests.sh")

# Programs the docs may show but the test cannot run here (they talk to Google Cloud or change the machine).
# Their path arguments are still checked.
EXTERNAL = frozenset({"gcloud", "terraform", "pip", "cp", "openssl", "curl"})
# Top-level packages of this repository: `python -m` on these is checked against their --help.
REPO_MODULES = frozenset({"dagtrigger", "devtools", "bench", "loadtest", "tests"})
# Console scripts of pyproject.toml's [project.scripts] -> the module they run (checked like `python -m MODULE`).
CONSOLE_SCRIPTS = {"dagtrigger": "dagtrigger"}
SHELL_OPERATORS = frozenset({"|", "||", "&&", ";", ">", ">>", "<", "&"})
MARKDOWN = MarkdownIt("commonmark")


@dataclass(frozen=True)
class Block:
    """One code block: where it is (for the test id and failure messages) and what it holds."""

    file: Path
    line: int
    info: str
    content: str

    @property
    def where(self) -> str:
        return f"{self.file.relative_to(REPO_ROOT)}:{self.line}"


def _blocks() -> Iterator[Block]:
    for file in DOC_FILES:
        for token in MARKDOWN.parse(file.read_text(encoding="utf-8")):
            if token.type in ("fence", "code_block"):
                line = token.map[0] + 1 if token.map else 0
                info = " ".join(token.info.split()) if token.type == "fence" else "(indented code block)"
                yield Block(file, line, info, token.content)


BLOCKS = tuple(_blocks())


# ----------------------------------------------------------------------------- bash


def _logical_lines(content: str) -> Iterator[str]:
    """Lines with ``\\`` continuations joined; blank and comment-only lines dropped."""
    pending = ""
    for raw in content.splitlines():
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        line = (pending + raw).strip()
        pending = ""
        if line and not line.startswith("#"):
            yield line
    assert not pending, f"a line continues past the end of the block: {pending!r}"


@functools.cache
def _module_help(module: str, subcommands: tuple[str, ...]) -> str:
    """``python -m MODULE SUBCOMMANDS --help`` from the repository root (argparse prints it and exits 0)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *subcommands, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0, f"python -m {module} {' '.join(subcommands)} --help failed:\n{proc.stderr}"
    return proc.stdout


def _options(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--") and a != "--"]


def _mentions(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def _check_paths(words: list[str], cwd: Path) -> None:
    """A relative path whose first part exists here (``tests/…``, ``deploy/…``) must exist as a whole."""
    for word in words:
        if word.startswith("-") or "/" not in word or ":" in word:
            continue
        if (cwd / word.split("/", 1)[0]).exists():
            assert (cwd / word).exists(), f"{word} does not exist (relative to {cwd.relative_to(REPO_ROOT)}/)"


def _check_python_module(module: str, args: list[str]) -> None:
    subcommands = []
    for word in args:
        if word.startswith("-"):
            break
        subcommands.append(word)
    help_text = _module_help(module, tuple(subcommands))
    for option in _options(args):
        assert _mentions(help_text, option), f"python -m {module} {' '.join(subcommands)} has no option {option}"


def _dry_run(script: Path, args: list[str], fake_bin: Path) -> None:
    """Run a deploy script with --dry-run; a gcloud or curl that gets called fails the run (exit 97)."""
    argv = ["bash", str(script), *args]
    if "--dry-run" not in args:
        argv.append("--dry-run")
    env = {"PATH": f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert proc.returncode == 0, f"{shlex.join(argv)} exited {proc.returncode}:\n{proc.stderr}"
    assert "+ gcloud " in proc.stdout, f"{shlex.join(argv)} listed no gcloud command:\n{proc.stdout}"


def _check_script(script: Path, args: list[str], fake_bin: Path) -> None:
    assert script.is_file(), f"{script.relative_to(REPO_ROOT)} does not exist"
    relative = script.relative_to(REPO_ROOT)
    if relative.parts[0] == "deploy" and script.suffix == ".sh":
        _dry_run(script, args, fake_bin)
        return
    text = script.read_text(encoding="utf-8")
    for module in re.findall(r"python -m ([A-Za-z_]\w*(?:\.\w+)*)", text):
        text += _module_help(module, ())
    for option in _options(args):
        assert _mentions(text, option), f"{relative} (or what it runs) has no option {option}"


def _check_command(words: list[str], cwd: Path, fake_bin: Path) -> Path:
    """Check one command; returns the working directory for the next one (``cd`` changes it)."""
    env = {}
    while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if env:
        settings_from_env(env)
    assert words, "a line with only variable assignments: use an env block"
    program, args = words[0], words[1:]
    if program == "cd":
        target = (cwd / args[0]).resolve()
        assert target.is_dir(), f"cd {args[0]}: no such directory"
        return target
    if program in ("python", "python3") and args[:1] == ["-m"]:
        module, rest = args[1], args[2:]
        if module.split(".")[0] in REPO_MODULES:
            _check_python_module(module, rest)
        else:
            _check_paths(rest, cwd)
        return cwd
    if program in CONSOLE_SCRIPTS:
        _check_python_module(CONSOLE_SCRIPTS[program], args)
        return cwd
    if program == "bash":
        program, args = args[0], args[1:]
    if program.endswith(".sh") or "/" in program:
        _check_script((cwd / program).resolve(), args, fake_bin)
        return cwd
    assert program in EXTERNAL, (
        f"unknown program {program!r}: add it to EXTERNAL in {Path(__file__).name} if it is real"
    )
    if program == "cp":
        assert (cwd / args[0]).exists(), f"cp {args[0]}: no such file"
    _check_paths(args, cwd)
    return cwd


def check_bash(block: Block, fake_bin: Path) -> None:
    cwd = REPO_ROOT
    for line in _logical_lines(block.content):
        words = shlex.split(line, comments=True)
        placeholders = [w for w in words if "..." in w or "…" in w]
        assert not placeholders, f"placeholder {placeholders} in {line!r}: write a complete command or use ```text"
        operators = [w for w in words if w in SHELL_OPERATORS]
        assert not operators, f"shell operator {operators} in {line!r}: one command per line"
        cwd = _check_command(words, cwd, fake_bin)


# ----------------------------------------------------------------------------- config blocks


def _routing(block: Block, tmp_path: Path) -> None:
    suffix = block.info.split()[0]
    file = tmp_path / f"routes.{suffix}"
    file.write_text(block.content, encoding="utf-8")
    # Route secrets (webhook.secrets) name environment variables mapped from Secret Manager: give each a stand-in.
    names = re.findall(r"\b[A-Z][A-Z0-9_]*SECRET[A-Z0-9_]*\b", block.content)
    load_rules(str(file), {name: f"stand-in-for-{name.lower()}-0123456789" for name in names})


def check_routing(block: Block, tmp_path: Path) -> None:
    _routing(block, tmp_path)


def check_routing_invalid(block: Block, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        _routing(block, tmp_path)


def _env(block: Block) -> dict[str, str]:
    env = {}
    for line in block.content.splitlines():
        if line.strip() and not line.startswith("#"):
            name, equals, value = line.partition("=")
            assert equals and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            env[name] = value
    return env


def check_env(block: Block, tmp_path: Path) -> None:
    settings_from_env(_env(block))


def check_env_invalid(block: Block, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        settings_from_env(_env(block))


def check_python(block: Block, tmp_path: Path) -> None:
    compile(block.content, block.where, "exec")


def check_json_output(block: Block, tmp_path: Path) -> None:
    json.loads(block.content)


def check_text(block: Block, tmp_path: Path) -> None:
    """Not exercised: output, diagrams and synopses."""


CHECKS: dict[str, Callable[[Block, Path], None]] = {
    "yaml": check_routing,
    "json": check_routing,
    "yaml invalid": check_routing_invalid,
    "json invalid": check_routing_invalid,
    "env": check_env,
    "env invalid": check_env_invalid,
    "python": check_python,
    "json output": check_json_output,
    "text": check_text,
}


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gcloud and curl that fail loudly: a --dry-run must not call them."""
    directory = tmp_path_factory.mktemp("fakebin")
    for name in ("gcloud", "curl"):
        path = directory / name
        path.write_text(f'#!/bin/sh\necho "{name} must not run in --dry-run" >&2\nexit 97\n', encoding="utf-8")
        path.chmod(0o755)
    return directory


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"{b.where}[{b.info}]")
def test_code_block(block: Block, tmp_path: Path, fake_bin: Path) -> None:
    if block.info == "bash":
        check_bash(block, fake_bin)
        return
    check = CHECKS.get(block.info)
    assert check is not None, (
        f"{block.where}: code block with info string {block.info!r} is not one the docs test knows; use one of "
        f"bash, {', '.join(CHECKS)} (see docs/README.md)"
    )
    check(block, tmp_path)


# ----------------------------------------------------------------------------- the landing page and links


def test_readme_starts_with_the_two_set_up_commands() -> None:
    """.ci/run and the session hook read the README's first code block: it must stay exactly these commands."""
    first = next(b for b in BLOCKS if b.file.name == "README.md")
    assert first.info == "bash"
    commands = [shlex.split(line, comments=True) for line in _logical_lines(first.content)]
    assert [shlex.join(c) for c in commands] == list(SET_UP_COMMANDS)
    ci = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert SET_UP_COMMANDS[1] in ci


def _slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


@functools.cache
def _anchors(file: Path) -> frozenset[str]:
    tokens = MARKDOWN.parse(file.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    anchors = set()
    for opening, inline in itertools.pairwise(tokens):
        if opening.type == "heading_open":
            text = "".join(c.content for c in inline.children or () if c.type in ("text", "code_inline"))
            slug = _slug(text)
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return frozenset(anchors)


def _links(file: Path) -> Iterator[str]:
    for token in MARKDOWN.parse(file.read_text(encoding="utf-8")):
        for child in token.children or ():
            if child.type == "link_open":
                yield str(child.attrs["href"])


@pytest.mark.parametrize("file", DOC_FILES, ids=lambda f: str(f.relative_to(REPO_ROOT)))
def test_relative_links_resolve(file: Path) -> None:
    for href in _links(file):
        if re.match(r"^[a-z]+:", href):
            continue
        path, _, anchor = href.partition("#")
        target = (file.parent / path).resolve() if path else file
        assert target.exists(), f"{file.name}: link {href} points to a missing file"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{file.name}: link {href}: no heading with that anchor"
