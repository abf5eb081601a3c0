"""The log-based metrics in deploy/terraform/monitoring.tf count lines the function and the sweep really print.

The function runs as a real functions-framework process (against the fake Airflow and the storage emulator) and
the sweep as the real command; each metric's filter, and each field its extractors read, is evaluated against
their JSON log lines, as Cloud Logging would see them under jsonPayload.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from dagtrigger.send import storage_event
from devtools.fake_pubsub import FakePubSub
from devtools.fakes import Answer, FakeAirflow
from devtools.localfunction import REPO, FunctionProcess, clean_env
from tests.support.storage_emulator import storage_emulator

from .test_terraform import TF_DIR, blocks, hcl2

_MISSING = object()
ROUTES = """
routes:
  - name: orders
    dag_id: ingest
    match: {bucket: metrics-landing, name: {prefix: ok/}}
  - name: refused
    dag_id: no_such_dag
    match: {bucket: metrics-landing, name: {prefix: bad/}}
  - name: flaky
    dag_id: flaky
    match: {bucket: metrics-landing, name: {prefix: later/}}
"""


def _filters() -> dict[str, str]:
    with (TF_DIR / "monitoring.tf").open(encoding="utf-8") as handle:
        document = hcl2.load(handle)
    (found,) = [block["log_filters"] for block in document["locals"] if "log_filters" in block]
    # HCL string literals (quoted, with \" escapes) read as JSON strings
    return {name: json.loads(text).replace("${local.log_source} AND ", "") for name, text in found.items()}


def _path(entry: dict[str, Any], dotted: str) -> Any:
    value: Any = entry
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_CLAUSE = re.compile(r'jsonPayload\.([\w.]+)\s*(=~|=|:|>)\s*(?:"((?:[^"\\]|\\.)*)"|(\*)|(-?\d+))')


def matches(entry: dict[str, Any], filter_text: str) -> bool:
    """The subset of the Logging query language monitoring.tf uses: clauses on jsonPayload joined by AND."""
    for clause in filter_text.split(" AND "):
        parsed = _CLAUSE.fullmatch(clause.strip())
        assert parsed, f"a clause this test cannot read (keep filters to jsonPayload.F op value): {clause!r}"
        field, op, text, star, number = parsed.groups()
        value = _path(entry, field)
        if value is _MISSING:
            return False
        if not _holds(value, op, text, star, number):
            return False
    return True


def _holds(value: Any, op: str, text: str | None, star: str | None, number: str | None) -> bool:
    if op == "=":
        return str(value) == text
    if op == "=~":
        return re.search(text or "", str(value)) is not None
    if op == ":":
        return star is not None or (text or "") in str(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > int(number or 0)


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """Log lines of one function process (done, duplicate, ignored, retry, failed with a dead letter) and of one
    sweep (that finds an upload missing)."""
    folder = tmp_path_factory.mktemp("metrics")
    (folder / "routes.yaml").write_text(ROUTES)
    with storage_emulator() as gcs, FakeAirflow() as airflow:
        gcs.create_bucket("metrics-landing")
        gcs.create_bucket("metrics-ops")
        client = gcs.client()
        env = {
            "AIRFLOW_URI": airflow.url,
            "AIRFLOW_AUTH": "none",
            "ROUTES_FILE": str(folder / "routes.yaml"),
            "DEAD_LETTER_URI": "gs://metrics-ops/dl",
            "AIRFLOW_RETRY_BUDGET_SECONDS": "1",
            **gcs.env(),
        }
        airflow.missing_dags.add("no_such_dag")
        with FunctionProcess("trigger_event", env, folder) as function:
            for name in ("ok/a.csv", "ok/a.csv", "ok/b.tmp", "bad/c.csv", "later/d.csv"):
                if name.startswith("later/"):
                    airflow.faults.extend(Answer(503, {"detail": "busy"}) for _ in range(30))
                client.bucket("metrics-landing").blob(name).upload_from_string(b"x")
                out = storage_event(function.url, "metrics-landing", name, generation="7")
                function.post(headers=dict(out.headers), data=out.body)
            entries = function.logs()
        airflow.faults.clear()
        client.bucket("metrics-landing").blob("ok/missing.csv").upload_from_string(b"x")
        swept = subprocess.run(
            [sys.executable, "-m", "dagtrigger", "sweep", "--since", "1h", "--settle", "0", "--dry-run"],
            env=clean_env(env, folder), cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert swept.returncode == 0, swept.stderr
        entries += [json.loads(line) for line in swept.stderr.splitlines() if line.startswith("{")]
        entries += _drain_lines(env, folder, client)
        yield entries


def _drain_lines(env: dict[str, str], folder: Any, client: Any) -> list[dict[str, Any]]:
    """One drain that sends an upload from the dead-letter topic and leaves a message it cannot trust."""
    hold = "projects/metrics/subscriptions/dead-hold"
    with FakePubSub() as pubsub:
        pubsub.create_subscription(hold)
        client.bucket("metrics-landing").blob("ok/dead.csv").upload_from_string(b"x")
        out = storage_event("http://unused", "metrics-landing", "ok/dead.csv", generation="7")
        attrs = {f"ce-{k}": v for k, v in out.attributes.items() if k != "datacontenttype"}
        pubsub.publish_dead_letter(hold, out.body, {**attrs, "content-type": "application/json"})
        pubsub.publish(hold, b"{}", {"k": "v"})  # not forwarded by dead lettering: left
        drained = subprocess.run(
            [sys.executable, "-m", "dagtrigger", "drain", hold, "--no-verify"],
            env={**clean_env(env, folder), "PUBSUB_EMULATOR_HOST": pubsub.url.removeprefix("http://")},
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert drained.returncode == 1 and "1 triggered" in drained.stdout, drained.stdout + drained.stderr
    return [json.loads(line) for line in drained.stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name", sorted(_filters()))
def test_each_metric_filter_matches_lines_the_code_prints(lines: list[dict[str, Any]], name: str) -> None:
    filter_text = _filters()[name]
    assert any(matches(entry, filter_text) for entry in lines), (filter_text, lines)


def test_the_event_metric_sees_every_outcome_and_route(lines: list[dict[str, Any]]) -> None:
    events = [e for e in lines if matches(e, _filters()["events"])]
    assert {e["outcome"] for e in events} == {"done", "duplicate", "ignored", "retry", "failed"}
    assert {e.get("route") for e in events} >= {"orders", "refused", "flaky"}


def test_extractors_read_fields_that_exist(lines: list[dict[str, Any]]) -> None:
    metrics = blocks("resource")
    extract = re.compile(r"EXTRACT\(jsonPayload\.([\w.]+)\)")
    filters = {f"${{local.log_filters.{k}}}": v for k, v in _filters().items()}
    checked = 0
    for (kind, _), body in metrics.items():
        if kind != "google_logging_metric":
            continue
        filter_text = filters[body["filter"]]
        matched = [e for e in lines if matches(e, filter_text)]
        extractors = [body.get("value_extractor") or "", *(body.get("label_extractors") or {}).values()]
        for field in (m.group(1) for x in extractors for m in [extract.search(x or "")] if m):
            assert any(_path(e, field) is not _MISSING for e in matched), (body["name"], field)
            checked += 1
    assert checked >= 5


def test_the_alert_policies_use_the_metrics_defined_here() -> None:
    names = {name for (kind, name) in blocks("resource") if kind == "google_logging_metric"}
    text = (TF_DIR / "monitoring.tf").read_text(encoding="utf-8")
    used = set(re.findall(r"google_logging_metric\.(\w+)\[0\]\.name", text))
    assert used and used <= names
    assert {"dead_letters", "sweeps_with_missing", "retries", "drains_with_left"} <= used


def test_this_evaluator_is_strict() -> None:
    assert matches({"outcome": "retry"}, 'jsonPayload.outcome="retry"')
    assert not matches({"outcome": "done"}, 'jsonPayload.outcome="retry"')
    assert not matches({"sweep": {"missing": 0}}, "jsonPayload.sweep.missing>0")
    assert not matches({"sweep": {"missing": 2}}, "jsonPayload.outcome:* AND jsonPayload.sweep.missing>0")
    assert matches({"dead_letter": "x"}, "jsonPayload.dead_letter:*")
