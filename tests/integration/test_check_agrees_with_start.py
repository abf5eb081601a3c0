"""`check`'s configuration step and a real start of the function agree on every configuration.

Each row is run twice: through `dagtrigger check` (its configuration step, in process) and through a real
functions-framework process serving main.py with the same environment. Before the one `function.build`, `check`
said ✓ for configurations the function refused (a dead-letter prefix with a wildcard; a webhook route without a
secret under trigger_http).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import pytest

from dagtrigger.check import run_check
from dagtrigger.check.report import Status
from devtools.localfunction import FunctionProcess

SECRET = "s3cret-s3cret-s3cret-s3cret"
SEAL = "MTIzNDU2Nzg5MDEyMzQ1Ng=="  # base64 of 16 bytes: the shortest seal key that starts
BASE = {"AIRFLOW_URI": "http://127.0.0.1:9", "AIRFLOW_AUTH": "none", "DAGTRIGGER_WARMUP": "0"}
PUSH = {"PUSH_AUDIENCE": "https://fn.example", "PUSH_SERVICE_ACCOUNTS": "pusher@p.iam.gserviceaccount.com"}
WEBHOOK_ROUTES = {
    "routes": [
        {"name": "shop", "dag_id": "shop_orders", "match": {"kind": "webhook", "path": {"prefix": "/shop"}}},
        {"name": "files", "dag_id": "ingest", "match": {"kind": "storage", "bucket": "landing"}},
    ]
}


class Row(NamedTuple):
    name: str
    entry_point: str
    env: dict[str, str]
    starts: bool  # what we expect of both


ROWS = [
    Row("dag id only", "trigger_event", {"DAG_ID": "ingest"}, True),
    Row("no DAG_ID nor ROUTES_FILE", "trigger_event", {}, False),
    Row(
        "dead-letter prefix with a wildcard",
        "trigger_event",
        {"DAG_ID": "i", "DEAD_LETTER_URI": "gs://b1/dead*l"},
        False,
    ),
    Row("dead-letter bucket of two letters", "trigger_event", {"DAG_ID": "i", "DEAD_LETTER_URI": "gs://ab/dl"}, False),
    Row("good dead-letter location", "trigger_event", {"DAG_ID": "i", "DEAD_LETTER_URI": "gs://my-bucket/dl"}, True),
    Row("webhooks without a secret", "trigger_http", {"DAG_ID": "ingest"}, False),
    Row("webhooks with a secret", "trigger_http", {"DAG_ID": "ingest", "WEBHOOK_HMAC_SECRET": SECRET}, True),
    Row("webhooks behind Cloud Run IAM", "trigger_http", {"DAG_ID": "ingest", "WEBHOOK_AUTH": "cloud-run-iam"}, True),
    Row("webhook route without a secret, event entry point", "trigger_event", {"ROUTES_FILE": "routes.json"}, True),
    Row("webhook route without a secret, http entry point", "trigger_http", {"ROUTES_FILE": "routes.json"}, False),
    Row("push without its settings", "trigger_push", {"DAG_ID": "ingest"}, False),
    Row("push with its settings", "trigger_push", {"DAG_ID": "ingest", **PUSH}, True),
    Row("the removed unsigned-push switch", "trigger_push", {"DAG_ID": "i", **PUSH, "ALLOW_UNSIGNED_PUSH": "1"}, False),
    Row(
        "a seal key of 15 bytes",
        "trigger_event",
        {"DAG_ID": "i", "DEAD_LETTER_SEAL_SECRET": "MTIzNDU2Nzg5MDEyMzQ1"},
        False,
    ),
    Row("a seal key of 16 bytes", "trigger_event", {"DAG_ID": "i", "DEAD_LETTER_SEAL_SECRET": SEAL}, True),
    Row("a previous seal key alone", "trigger_event", {"DAG_ID": "i", "DEAD_LETTER_SEAL_SECRET_PREVIOUS": SEAL}, False),
    Row("an age limit that is not a number", "trigger_event", {"DAG_ID": "i", "MAX_EVENT_AGE_SECONDS": "a day"}, False),
]


def _env(row: Row, workdir: Path) -> dict[str, str]:
    env = {**BASE, **row.env}
    if "ROUTES_FILE" in env:
        path = workdir / env["ROUTES_FILE"]
        path.write_text(json.dumps(WEBHOOK_ROUTES))
        env["ROUTES_FILE"] = str(path)
    return env


def _check_says_it_starts(env: dict[str, str], entry_point: str) -> bool:
    """The configuration step alone (later steps need an Airflow; here none answers, by design)."""
    report = run_check({**env, "FUNCTION_TARGET": entry_point}, timeout_s=0.5)
    step = next(s for s in report.steps if s.name == "configuration")
    return step.status is Status.OK


def _function_starts(env: dict[str, str], entry_point: str, workdir: Path) -> bool:
    signature = "cloudevent" if entry_point == "trigger_event" else "http"
    process = FunctionProcess(entry_point, env, workdir, signature=signature)
    try:
        process.start()
    except RuntimeError:
        return False
    process.stop()
    return True


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_check_and_a_real_start_agree(row: Row, tmp_path: Path) -> None:
    env = _env(row, tmp_path)
    said = _check_says_it_starts(env, row.entry_point)
    started = _function_starts(env, row.entry_point, tmp_path)
    assert said == started, f"check said {'✓' if said else '✗'} but the function {'started' if started else 'refused'}"
    assert started is row.starts
