"""dagtrigger/logs.py: one line of printable JSON per record, whatever text it carries."""

from __future__ import annotations

import io
import json

from hypothesis import given
from hypothesis import strategies as st

from dagtrigger import logs


@given(st.text())
def test_json_printable_keeps_the_value_and_leaves_nothing_unprintable(value: str) -> None:
    text = logs.json_printable(json.dumps({"v": value}, ensure_ascii=False))
    assert text.isprintable()
    assert len(text.splitlines()) == 1
    assert json.loads(text) == {"v": value}


def test_a_record_with_c1_controls_and_line_separators_is_one_printable_line() -> None:
    stream = io.StringIO()
    logger = logs.configure(stream=stream)
    hostile = "a\x85b\x9bc\u2028d\u2029e\x7f\u202ef\U000e0001"
    logger.info("name %s", hostile, extra={"run_id": hostile})
    line = stream.getvalue()
    assert line.endswith("\n") and line[:-1].isprintable() and len(line.splitlines()) == 1
    entry = json.loads(line)
    assert entry["message"] == f"name {hostile}" and entry["run_id"] == hostile
    assert "\\u0085" in line and "\\u2028" in line and "\\udb40\\udc01" in line
