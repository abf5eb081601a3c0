"""The docs name what the product defines, and the product defines nothing the docs do not name.

Read from the docs: every setting (docs/configuration.md's tables; any ``NAME=value`` in a shell or env block and any
settings-like name in backticks anywhere), every entry point, every operator command with its options (in code blocks
and inline code), and the options of the local runners. Read from the product: the environment variables
``dagtrigger/`` and ``main.py`` look up (parsed from their source), the functions ``main.py`` registers with
functions-framework, the subcommands and options argparse builds. Either side drifting fails here, naming the page.
"""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
CONFIGURATION = REPO / "docs" / "configuration.md"
SETTING = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Names in backticks that look like our settings (an Airflow option, a user's own secret name or a log field does not).
OUR_PREFIXES = ("AIRFLOW_", "DAG_ID", "DAGTRIGGER_", "DEAD_LETTER", "LOG_LEVEL", "MAX_", "PUSH_", "ROUTES_", "STORAGE_")
OUR_PREFIXES += ("WEBHOOK_AUTH", "WEBHOOK_HMAC", "WEBHOOK_TOLERANCE")
# Variables the docs name that other software reads: the package whose installed source must read each.
READ_BY_OTHERS = {
    "THREADS": "functions_framework",  # gunicorn threads per instance (deploy sets it)
    "STORAGE_EMULATOR_HOST": "google.cloud.storage",  # tests point the storage client at an emulator
    "GCE_METADATA_HOST": "google.auth",  # tests point google-auth at a local metadata server
    # The function sets it at start-up (gcs.BUCKET_PROBE_SWITCH); the library reads it.
    "DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA": "google.cloud.storage",
}
ENTRY_POINT = re.compile(r"\btrigger_(?:event|http|push|[a-z]+)\b")
MARKDOWN = MarkdownIt("commonmark")


def _source_of(package: str) -> str:
    module = __import__(package, fromlist=["_"])
    root = Path(module.__file__ or "").parent
    return "\n".join(path.read_text(errors="replace") for path in root.rglob("*.py"))


# ----------------------------------------------------------------------------- the product side


def _product_files() -> list[Path]:
    return [REPO / "main.py", *sorted((REPO / "dagtrigger").rglob("*.py"))]


def _is_environment(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("env", "environ")
    return isinstance(node, ast.Attribute) and node.attr == "environ"


@functools.cache
def settings_read() -> frozenset[str]:
    """Every NAME looked up in an environment mapping by dagtrigger/ or main.py: ``env.get("X")``,
    ``os.environ["X"]``, ``"X" in env``, or a helper given the environment and the name (``_number(env, "X")``)."""
    names: set[str] = set()
    for path in _product_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            candidates: list[ast.expr] = []
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_environment(func.value):
                    candidates = node.args[:1]
                elif isinstance(func, ast.Attribute) and func.attr == "getenv":
                    candidates = node.args[:1]
                elif any(_is_environment(arg) for arg in node.args):
                    candidates = list(node.args)
            elif isinstance(node, ast.Subscript) and _is_environment(node.value):
                candidates = [node.slice]
            elif isinstance(node, ast.Compare) and any(_is_environment(c) for c in node.comparators):
                candidates = [node.left]
            for candidate in candidates:
                if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
                    if SETTING.fullmatch(candidate.value):
                        names.add(candidate.value)
    return frozenset(names)


@functools.cache
def entry_points() -> frozenset[str]:
    """The functions main.py registers with functions-framework (decorated ``@functions_framework.…``)."""
    tree = ast.parse((REPO / "main.py").read_text(encoding="utf-8"))
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "functions_framework":
                    found.add(node.name)
    return frozenset(found)


@functools.cache
def help_text(*argv: str) -> str:
    proc = subprocess.run([sys.executable, *argv, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(argv)} --help failed:\n{proc.stderr}"
    return proc.stdout


def options_of(help_output: str) -> frozenset[str]:
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", help_output)) - {"--help"}


def subcommands(help_output: str) -> tuple[str, ...]:
    match = re.search(r"\{([a-z,-]+)\}", help_output)
    return tuple(match.group(1).split(",")) if match else ()


# ----------------------------------------------------------------------------- the docs side


def _code(file: Path) -> Iterator[tuple[str, str]]:
    """(kind, text) of every fenced block (its info string) and inline code span of a page."""
    for token in MARKDOWN.parse(file.read_text(encoding="utf-8")):
        if token.type == "fence":
            yield token.info.strip(), token.content
        for child in token.children or ():
            if child.type == "code_inline":
                yield "inline", child.content


def _table_first_cells(file: Path) -> Iterator[str]:
    for line in file.read_text(encoding="utf-8").splitlines():
        if line.startswith("| `"):
            yield line.split("|")[1]


def documented_settings() -> frozenset[str]:
    """The first column of docs/configuration.md's tables."""
    return frozenset(name for cell in _table_first_cells(CONFIGURATION) for name in SETTING.findall(cell))


def settings_named(file: Path) -> Iterator[str]:
    """Settings a page names: ``NAME=`` in shell and env blocks, and our settings-like names in inline code."""
    for kind, text in _code(file):
        if kind in ("bash", "env", "env invalid"):
            yield from re.findall(r"(?m)(?:^|\s)([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)=", text)
        elif kind == "inline":
            for name in SETTING.findall(text):
                if name.startswith(OUR_PREFIXES) and "__" not in name:
                    yield name


def commands_named(file: Path) -> Iterator[list[str]]:
    """``dagtrigger …`` commands in a page's code (blocks line by line, inline spans whole)."""
    for kind, text in _code(file):
        lines = text.splitlines() if kind != "inline" else [text]
        for line in lines:
            line = line.split(" #", 1)[0]
            match = re.search(r"(?:^|\s)dagtrigger ([a-z].*)", line)
            if match:
                words = [w for w in re.split(r"[\s\[\]|]+", match.group(1)) if w]
                yield words


# ----------------------------------------------------------------------------- settings


def test_the_scan_finds_what_settings_py_reads() -> None:
    """Guard of the guard: if the scan stopped finding lookups, both directions below would pass vacuously."""
    assert {"AIRFLOW_URI", "DAG_ID", "ROUTES_FILE", "DAGTRIGGER_WARMUP", "FUNCTION_TARGET"} <= settings_read()


def test_every_setting_the_product_reads_is_documented() -> None:
    missing = sorted(settings_read() - documented_settings())
    assert not missing, f"read by the product but not in docs/configuration.md's tables: {missing}"


def test_every_documented_setting_is_read() -> None:
    for name in sorted(documented_settings() - settings_read()):
        package = READ_BY_OTHERS.get(name)
        assert package, f"docs/configuration.md documents {name}, which nothing in dagtrigger/ or main.py reads"
        assert name in _source_of(package), f"{name} is documented as read by {package}, whose source lacks it"


@functools.cache
def _dev_sources() -> str:
    """devtools/, bench/, loadtest/ and tests/: they read the developer settings the docs name (DAGTRIGGER_CACHE)."""
    folders = ("devtools", "bench", "loadtest", "tests")
    return "\n".join(p.read_text(errors="replace") for f in folders for p in sorted((REPO / f).rglob("*.py")))


@pytest.mark.parametrize("file", DOCS, ids=lambda f: str(f.relative_to(REPO)))
def test_settings_named_in_a_page_exist(file: Path) -> None:
    named = set(settings_named(file)) - settings_read() - set(READ_BY_OTHERS)
    unknown = sorted(name for name in named if f'"{name}"' not in _dev_sources())
    assert not unknown, f"{file.name} names settings the product does not read: {unknown}"


# ----------------------------------------------------------------------------- entry points


def test_entry_points_named_in_the_docs_are_defined_and_every_one_is_documented() -> None:
    section = (REPO / "docs" / "events.md").read_text(encoding="utf-8").split("## Entry points", 1)[1]
    section = section.split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `(\w+)`", section, flags=re.M))
    assert documented == set(entry_points()), (
        f"docs/events.md's Entry points table lists {sorted(documented)}; main.py defines {sorted(entry_points())}"
    )
    pages = [*DOCS, *sorted((REPO / "deploy").rglob("*.sh")), *sorted((REPO / "deploy").rglob("*.tf"))]
    for file in pages:
        text = file.read_text(encoding="utf-8")
        named = re.findall(r"(?:entry[ _-]point[^`\n]{0,40}`|--entry-point[= ]|entry_point\s*=[^\n]*\")(\w+)", text)
        named += re.findall(r"`(trigger_(?:event|http|push|webhook|pubsub|storage|cloud_event|[a-z]+_event))`", text)
        for name in named:
            if name.startswith("trigger_"):
                assert name in entry_points(), f"{file.relative_to(REPO)} names entry point {name}: main.py has none"


# ----------------------------------------------------------------------------- commands and options


def test_every_operator_command_and_option_in_the_docs_exists() -> None:
    top = help_text("-m", "dagtrigger")
    for file in DOCS:
        for words in commands_named(file):
            command = words[0]
            if not re.fullmatch(r"[a-z]+", command) or command in ("is", "and", "or"):
                continue
            assert command in subcommands(top), f"{file.name}: `dagtrigger {command}` is not a command"
            argv = ["-m", "dagtrigger", command]
            kinds = subcommands(help_text(*argv))
            if kinds and len(words) > 1 and words[1] in kinds:
                argv.append(words[1])
            known = options_of(help_text(*argv))
            for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
                assert option in known, f"{file.name}: `dagtrigger {' '.join(argv[2:])}` has no option {option}"


def test_every_operator_command_and_option_is_documented() -> None:
    """The reverse: each command, and each option of it (send: of each kind), appears on some page."""
    text = "\n".join(file.read_text(encoding="utf-8") for file in DOCS)
    top = help_text("-m", "dagtrigger")
    for command in subcommands(top):
        assert f"dagtrigger {command}" in text, f"`dagtrigger {command}` is documented nowhere"
        argv = ["-m", "dagtrigger", command]
        variants = [argv, *([*argv, kind] for kind in subcommands(help_text(*argv)))]
        for variant in variants:
            for option in sorted(options_of(help_text(*variant))):
                assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), (
                    f"`dagtrigger {' '.join(variant[2:])} {option}` is documented nowhere"
                )


RUNNERS = {
    # script: (the module it runs, the pages that must name every option)
    "devtools/run-load.sh": (("-m", "loadtest.loadrun"), ("docs/load.md",)),
    "devtools/run-local.sh": (("-m", "devtools.demo"), ("README.md", "devtools/README.md")),
    "python -m devtools.localairflow start": (("-m", "devtools.localairflow", "start"), ("devtools/README.md",)),
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_every_option_of_a_local_runner_is_documented(runner: str) -> None:
    argv, pages = RUNNERS[runner]
    text = "\n".join((REPO / page).read_text(encoding="utf-8") for page in pages)
    for option in sorted(options_of(help_text(*argv))):
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text), f"{runner} {option}: not in {pages}"


def test_run_load_help_is_whole_and_names_every_scenario() -> None:
    output = help_text("-m", "loadtest.loadrun")
    from loadtest.scenarios import DESCRIPTIONS

    for scenario in DESCRIPTIONS:
        assert scenario in output, f"run-load.sh --help does not name scenario {scenario}"
    description = output.split("\n\n")[1]
    assert description.rstrip().endswith((".", ":", ")")), f"--help's description stops mid-sentence: {description!r}"


def test_every_page_is_listed_in_both_indexes() -> None:
    """README's Documentation paragraph and docs/README.md's table each link every page of docs/."""
    readme = (REPO / "README.md").read_text(encoding="utf-8").split("## Documentation", 1)[1]
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    for page in sorted((REPO / "docs").glob("*.md")):
        if page.name == "README.md":
            continue
        assert f"(docs/{page.name})" in readme, f"README.md's Documentation section does not link docs/{page.name}"
        assert f"({page.name})" in index, f"docs/README.md's table does not list {page.name}"


def test_every_operator_command_in_a_shell_block_is_run_or_needs_google_cloud() -> None:
    """A `dagtrigger` line is either a local `send` (run against run-local.sh --keep's stack by
    tests/integration/test_docs_send.py) or aims at Google Cloud (a gs:// or https:// target, or --id-token): a line
    that is neither would be a command no test runs and no reader can run without a deployment."""
    from tests.docs.test_docs import BLOCKS, _logical_lines

    for block in BLOCKS:
        if block.info != "bash":
            continue
        for line in _logical_lines(block.content):
            words = line.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                words.pop(0)
            if not words or words[0] != "dagtrigger":
                continue
            local_send = words[1:2] == ["send"] and "--id-token" not in words
            google_cloud = "--id-token" in words or re.search(r"(?:gs|https)://", line) is not None
            assert local_send or google_cloud, (
                f"{block.where}: {line!r} is neither run by a test nor aimed at Google Cloud"
            )
