"""Every `dagtrigger send` line of README.md and docs/ runs as written against the stack `run-local.sh --keep` leaves
(devtools/demo.py: Airflow, trigger_event, trigger_http with a fresh secret), or needs Google Cloud (`--id-token`
to a deployed function) and is only checked statically by tests/docs.

Only the ports change: the docs use send's default (8080) and 8081; the test's functions listen on free ports."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.demo import DAG_ID, EVENT_PORT, WEBHOOK_PORT, demo_env, send_lines, webhook_function
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from tests.docs.test_docs import BLOCKS, _logical_lines

pytestmark = pytest.mark.integration
DEFAULT_URL = f"http://127.0.0.1:{EVENT_PORT}"


def documented_send_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `dagtrigger`) of every send line in the docs' bash blocks."""
    lines = []
    for block in BLOCKS:
        if block.info != "bash":
            continue
        for line in _logical_lines(block.content):
            words = shlex.split(line, comments=True)
            if words[:2] == ["dagtrigger", "send"]:
                lines.append((block.where, words[1:]))
    return lines


def needs_google_cloud(argv: list[str]) -> bool:
    return "--id-token" in argv


LOCAL = [(where, argv) for where, argv in documented_send_lines() if not needs_google_cloud(argv)]


def test_the_docs_have_local_send_lines_and_the_rest_name_a_deployed_function() -> None:
    assert len(LOCAL) >= 3  # troubleshooting's storage, pubsub and webhook lines at least
    for where, argv in documented_send_lines():
        urls = [argv[i + 1] for i, word in enumerate(argv[:-1]) if word == "--url"]
        if needs_google_cloud(argv):
            assert urls and all(url.startswith("https://") for url in urls), f"{where}: --id-token needs a deployed URL"
        else:
            assert all(url.startswith("http://127.0.0.1:") for url in urls), f"{where}: not local, no --id-token"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """(event function URL, webhook function URL, webhook secret), as run-local.sh --keep runs them (SQLite here)."""
    work = tmp_path_factory.mktemp("docs-send")
    with AirflowServer(3, work, auth="none") as airflow:
        webhook, secret = webhook_function(airflow, work)
        with FunctionProcess("trigger_event", demo_env(airflow), work) as event, webhook:
            yield event.url, webhook.url, secret


def _local(argv: list[str], event_url: str, webhook_url: str) -> list[str]:
    """The line with the docs' local ports mapped to the stack's."""
    ports = {DEFAULT_URL: event_url, f"http://127.0.0.1:{WEBHOOK_PORT}": webhook_url}
    mapped = [ports.get(word, word) for word in argv]
    return mapped if "--url" in mapped else [*mapped, "--url", event_url]


def _run(argv: list[str], secret: str) -> subprocess.CompletedProcess[str]:
    dagtrigger = str(Path(sys.executable).with_name("dagtrigger"))  # the console script, as users call it
    env = {**os.environ, "WEBHOOK_HMAC_SECRET": secret}
    return subprocess.run([dagtrigger, *argv], capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize(("where", "argv"), LOCAL, ids=[f"{w}:{a[1]}" for w, a in LOCAL])
def test_documented_send_line_runs_against_the_local_stack(
    where: str, argv: list[str], stack: tuple[str, str, str]
) -> None:
    event_url, webhook_url, secret = stack
    done = _run(_local(argv, event_url, webhook_url), secret)
    assert done.returncode == 0, f"{where}: dagtrigger {shlex.join(argv)}\n{done.stdout}\n{done.stderr}"
    assert '"outcome": "done"' in done.stdout or '"outcome": "duplicate"' in done.stdout, done.stdout
    assert DAG_ID in done.stdout


def test_the_lines_the_demo_prints_run_too(stack: tuple[str, str, str]) -> None:
    event_url, webhook_url, secret = stack
    for line in send_lines(event_url, webhook_url):
        argv = shlex.split(line)[1:]
        done = _run(argv, secret)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        # the webhook line's idempotency key is the docs' own: sent already above, so a duplicate is right too
        assert '"outcome": "done"' in done.stdout or '"outcome": "duplicate"' in done.stdout, done.stdout
