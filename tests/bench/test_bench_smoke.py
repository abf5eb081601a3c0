"""The benchmark runs end to end at tiny sizes and prints its whole table; no timing is asserted.

Why a test at all: the bench starts many real processes (functions-framework for ours and each baseline, the HTTPS
endpoint, the metadata server); this catches the bench rotting when the function or its settings change.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.table import COLUMNS, EMPTY, parse

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VARIANT_COLUMNS = ("raw POST", "bare", "floor (a)", "sample (b)", "ours")
RATIO_COLUMNS = ("ours÷(a)", "ours÷(b)", "ours÷bare")
LOAD_MEASURES = ("p50 latency ms", "p99 latency ms", "throughput events/s")
# (measure, c) → the columns that must hold a number.
EXPECTED: dict[tuple[str, str], tuple[str, ...]] = {
    **{
        (f"HTTPS endpoint: {measure}", c): ("raw POST", "floor (a)", "sample (b)", "ours", "ours÷(a)", "ours÷(b)")
        for measure in LOAD_MEASURES
        for c in ("1", "8", "32")
    },
    ("HTTPS endpoint: non-2xx or failed events", "all"): ("raw POST", "floor (a)", "sample (b)", "ours"),
    ("HTTPS endpoint: function CPU ms per event", "all"): ("floor (a)", "sample (b)", "ours", "ours÷(a)"),
    ("HTTPS endpoint: endpoint CPU ms per event", "all"): ("raw POST", "floor (a)", "sample (b)", "ours"),
    ("HTTPS endpoint: token fetches per 1,000 events", "all"): ("sample (b)", "ours"),
    ("HTTPS endpoint: token fetches per process", "all"): ("sample (b)", "ours"),
    ("cold start: port open s", "1"): ("bare", "floor (a)", "sample (b)", "ours", "ours÷bare"),
    ("cold start: first 2xx s", "1"): ("bare", "floor (a)", "sample (b)", "ours", "ours÷(a)", "ours÷bare"),
    ("cold start: first 2xx s, ours with AIRFLOW_AUTH=bearer", "1"): ("bare", "ours", "ours÷bare"),
    ("cold start: first 2xx s, ours with AIRFLOW_API_VERSION=v2", "1"): ("bare", "ours", "ours÷bare", "ours÷(b)"),
    ("cold start: first 2xx s, ours with DAGTRIGGER_FIRST_TOKEN=0", "1"): ("bare", "ours", "ours÷bare", "ours÷(b)"),
    ("peak RSS worker MB (VmHWM)", "32"): ("bare", "floor (a)", "sample (b)", "ours", "ours÷bare"),
    ("peak RSS master MB (VmHWM)", "32"): ("bare", "floor (a)", "sample (b)", "ours", "ours÷bare"),
    ("PSS master+worker MB (now)", "32"): ("bare", "floor (a)", "sample (b)", "ours"),
    ("import time ms: main (bare: functions_framework)", EMPTY): ("bare", "ours", "ours÷bare"),
    ("import time ms: after the port opens (google.auth…, event stages)", EMPTY): ("ours",),
    ("Airflow 3: skipped (--skip-airflow)", EMPTY): (),
}
TARGET_ROWS = {
    ("HTTPS endpoint: p50 latency ms", "1"),
    ("HTTPS endpoint: throughput events/s", "32"),
    ("cold start: first 2xx s", "1"),
    ("peak RSS worker MB (VmHWM)", "32"),
}


def _is_number(cell: str) -> bool:
    try:
        return not math.isnan(float(cell))
    except ValueError:
        return False


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    results = tmp_path_factory.mktemp("bench") / "results.md"
    cmd = [sys.executable, "-m", "bench", "--quick", "--skip-airflow", "--events", "16", "--results", str(results)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, results


def test_table_has_every_row_with_numbers(run: tuple[str, Path]) -> None:
    stdout, _ = run
    rows = {(row["measure"], row["c"]): row for row in parse(stdout)}
    assert len(parse(stdout)) == len(rows), "duplicate rows"
    for key, numeric in EXPECTED.items():
        assert key in rows, f"missing row {key}; rows: {sorted(rows)}"
        for column in numeric:
            assert _is_number(rows[key][column]), f"{key} {column}: {rows[key][column]!r}"
    offenders = [key for key in rows if key[0].startswith("import time ms: #")]
    assert len(offenders) >= 3, offenders
    for key, row in rows.items():
        for column in (*VARIANT_COLUMNS, *RATIO_COLUMNS):
            assert row[column] == EMPTY or _is_number(row[column]), f"{key} {column}: {row[column]!r}"
        assert row["result"] in ("PASS", "MISS", "n/a", EMPTY)
    for key in TARGET_ROWS:
        assert rows[key]["result"] in ("PASS", "MISS"), key


def test_every_event_was_answered_2xx(run: tuple[str, Path]) -> None:
    """Not timing: a non-2xx means a variant is broken, and its figures would measure error paths."""
    stdout, _ = run
    failed = next(r for r in parse(stdout) if r["measure"] == "HTTPS endpoint: non-2xx or failed events")
    assert {failed[v] for v in ("raw POST", "floor (a)", "sample (b)", "ours")} == {"0"}


def test_results_file_names_the_machine_and_the_command(run: tuple[str, Path]) -> None:
    stdout, results = run
    text = results.read_text()
    for needle in ("nproc", "CPU", "Python", "bash bench/run.sh --quick --skip-airflow"):
        assert needle in text
    assert parse(text) == parse(stdout)
    assert len(COLUMNS) == len(parse(stdout)[0])
