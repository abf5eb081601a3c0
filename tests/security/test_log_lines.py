"""Log safety: every log line is one line of printable JSON, whatever an event carries.

``json.dumps`` escapes only C0 controls; C1 controls (U+0080-U+009F, among them U+009B, a terminal's CSI, and
U+0085, NEL) and the line separators U+2028 / U+2029 went out raw in object names, message ids and run ids, so a
bucket writer could start a new line in a viewer that splits on them (Python's ``str.splitlines`` does) or send a
terminal escape to whoever tails the logs. Reproduced against a real ``trigger_event`` process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devtools.localfunction import FunctionProcess
from tests.support.fakes import FakeAirflow
from tests.unit.samples import pubsub_attrs, pubsub_data, storage_attrs, storage_data

from .harness import event_env

pytestmark = pytest.mark.integration

HOSTILE = '\x85\x9b31m\u2028{"severity":"CRITICAL"}\u2029\x7f'
RAW = ("\x85", "\x9b", "\u2028", "\u2029", "\x7f")


def test_c1_controls_and_line_separators_in_events_never_reach_a_log_line_raw(
    airflow: FakeAirflow, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.json"
    routes.write_text(
        json.dumps(
            {
                "routes": [
                    {"name": "files", "dag_id": "files", "match": {"kind": "storage", "bucket": "landing"}},
                    {"name": "msgs", "dag_id": "msgs", "match": {"kind": "pubsub", "topic": "orders"}},
                ]
            }
        )
    )
    with FunctionProcess("trigger_event", event_env(airflow.url, routes), tmp_path) as fn:
        name = f"in/{HOSTILE}.csv"
        reply = fn.send_event(storage_attrs(name=name), storage_data(name=name))
        assert reply.status_code == 200, reply.text
        message_id = f"42{HOSTILE}"
        reply = fn.send_event(pubsub_attrs(message_id=message_id), pubsub_data(b"{}", message_id=message_id))
        assert reply.status_code in (200, 400), reply.text
        raw = fn.output()
    for bad in RAW:
        assert bad not in raw, (repr(bad), raw[-1500:])
    entries = [json.loads(line) for line in raw.split("\n") if line.startswith("{")]
    assert any(HOSTILE in str(value) for e in entries for value in e.values()), entries  # escaped, not dropped
