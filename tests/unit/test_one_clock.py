"""Time has one home: no product module reads the wall clock, the monotonic clock or sleeps except through
``dagtrigger/clock.py``'s injected ``Clock``, so every test can set the time (issue 15: a fast-tier test failed once
the calendar passed its sample dates, because pipeline.py read ``datetime.now`` itself)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READS = {
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "sleep", "localtime",
             "gmtime"},
}  # fmt: skip


def clock_reads(source: str) -> list[str]:
    """``module.attr`` calls in ``source`` that read time or sleep without a Clock."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
            if node.func.attr in READS.get(name, ()):
                found.append(f"{name}.{node.func.attr} (line {node.lineno})")
        if isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [f"from time import {a.name} (line {node.lineno})" for a in node.names if a.name in READS["time"]]
    return found


def test_the_checker_finds_each_kind_of_read() -> None:
    source = "import time, datetime as dt\nfrom datetime import datetime, date\nfrom time import monotonic\n"
    source += "datetime.now(UTC); date.today(); time.sleep(1); dt.datetime.utcnow(); time.monotonic()\n"
    assert len(clock_reads(source)) == 6, clock_reads(source)


def test_no_product_module_reads_time_outside_the_clock() -> None:
    files = [ROOT / "main.py", *sorted((ROOT / "dagtrigger").rglob("*.py"))]
    offenders = {
        str(path.relative_to(ROOT)): reads
        for path in files
        if path != ROOT / "dagtrigger" / "clock.py" and (reads := clock_reads(path.read_text(encoding="utf-8")))
    }
    assert len(files) > 40 and offenders == {}, offenders
