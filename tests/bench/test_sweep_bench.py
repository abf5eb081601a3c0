"""bench/sweep.py runs end to end at a small size; its counts are exact (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench.sweep import run, table

pytestmark = pytest.mark.integration


def test_the_sweep_bench_counts_what_it_should() -> None:
    measured, _ = run(objects=300, missing=7)
    first, second = (m.summary for m in measured)
    assert (first.counts["objects_listed"], first.counts["missing"], first.counts["triggered"]) == (300, 7, 7)
    assert (second.counts["missing"], second.counts["triggered"]) == (0, 0)
    assert all(m.summary.airflow_calls == m.airflow_seen for m in measured)  # counted = what Airflow saw
    assert first.airflow_calls == 1 + 3 + 7  # the version probe, 293 runs in 3 pages, 7 POSTs
    assert "| 300 objects, 7 missing | 300 |" in table(measured, 300, 7, 0.0)
