"""The load burst, small: runs listed by Airflow's API equal the distinct events exactly, on SQLite (one function
instance, one call in flight) and on PostgreSQL with the scheduler (three instances, eight calls in flight each).

The full sizes are CLI runs, not part of the suite (docs/load.md):
``bash devtools/run-load.sh --scenario load --events 5000 --instances 4 --concurrency 64``.
"""

from __future__ import annotations

from dataclasses import replace

from devtools.localairflow import AirflowServer
from loadtest.burst import ClientPolicy
from loadtest.scenarios import BurstSpec, Rig, run_real

POLICY = ClientPolicy(deadline_s=240.0)


def test_burst_with_duplicates_gives_exactly_one_run_per_event(load_rig: Rig, airflow3: AirflowServer) -> None:
    spec = BurstSpec(events=300, concurrency=32, duplicates=0.1, concurrent_duplicates=0.5, poison=0.0)
    tally = run_real(replace(load_rig, instances=1), airflow3, "load", spec, POLICY, max_in_flight=1)
    print(f"\n{tally}")
    assert (tally.duplicates, tally.lost, tally.dead_letters) == (0, 0, 0), tally
    assert tally.runs == tally.distinct == 300, tally
    assert tally.sent == 330 and tally.answers_2xx == 330, tally


def test_multi_instance_burst_on_postgres(load_rig: Rig, airflow3_pg: AirflowServer) -> None:
    """500 events, 3 instances × 4 calls in flight (12: under the API server's default database pool of 15, see
    docs/load.md), 10 % redelivered on another instance (half of them concurrently):
    one run per event by Airflow's own count, every delivery acknowledged in the end (a 503 while Airflow is slow on
    this shared machine is redelivered, as the platform would), and Airflow's own ceiling measured beside it."""
    spec = BurstSpec(events=500, concurrency=12, duplicates=0.1, concurrent_duplicates=0.5, poison=0.0)
    tally = run_real(replace(load_rig, instances=3), airflow3_pg, "load", spec, POLICY, max_in_flight=4, ceiling=100)
    print(f"\n{tally}")
    assert (tally.duplicates, tally.lost, tally.dead_letters) == (0, 0, 0), tally
    assert tally.runs == tally.distinct == 500, tally
    assert tally.sent == 550 and tally.answers_2xx == 550 and tally.gave_up == 0, tally
    assert tally.airflow_ceiling_per_s > 0, tally
