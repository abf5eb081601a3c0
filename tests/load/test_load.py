"""The load burst, small: against the real Airflow 3, runs listed by Airflow's API equal the distinct events exactly.

The full size (5,000 events at concurrency 32) is a CLI run, not part of the suite:
``python -m tests.load.runner load --events 5000 --concurrency 32 --duplicates 0.1``.
"""

from __future__ import annotations

import pytest

from devtools.localairflow import AirflowServer
from tests.load.runner import BurstSpec, ClientPolicy, Rig, run_load

pytestmark = pytest.mark.integration


def test_burst_with_duplicates_gives_exactly_one_run_per_event(load_rig: Rig, airflow3: AirflowServer) -> None:
    spec = BurstSpec(events=300, concurrency=32, duplicates=0.1, concurrent_duplicates=0.5, poison=0.0)
    tally = run_load(load_rig, airflow3, spec, ClientPolicy(deadline_s=240.0), max_in_flight=1)
    print(f"\n{tally}")
    assert (tally.duplicates, tally.lost, tally.dead_letters) == (0, 0, 0), tally
    assert tally.runs == tally.distinct == 300, tally
    assert tally.sent == 330 and tally.answers_2xx == 330, tally
