"""The load harness's "measured fairly" pieces: the ceiling's POSTs carry the confs the function sends for the
burst's events, and --split-cpus gives Airflow and the function side separate CPUs (loadtest/cpus.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest

from dagtrigger.conf import RESERVED_KEY
from loadtest import cpus
from loadtest.deliveries import make_events
from loadtest.scenarios import event_confs


def test_the_ceiling_sends_the_confs_the_function_sends() -> None:
    events = make_events("fair", 20, pubsub=0.5, seed=3)
    confs = event_confs(events)
    assert len(confs) == 20
    for event, conf in zip(events, confs, strict=True):
        assert conf[RESERVED_KEY]["id"] == event.event_id or event.kind == "pubsub"
        if event.kind == "storage":
            assert conf["name"] == event.build["name"] and conf["bucket"] == event.build["bucket"]
        else:
            assert conf["load_key"] == event.key
    # The size the function's POSTs carry (hundreds of bytes), not the ceiling's former {"ceiling": true}.
    assert min(len(json.dumps(conf)) for conf in confs) > 300


def test_event_confs_is_bounded() -> None:
    events = make_events("fair", 30, seed=1)
    assert len(event_confs(events, limit=7)) == 7
    assert event_confs([replace(events[0], build={**events[0].build, "name": "other.csv"})])[0]["name"] == "other.csv"


@pytest.mark.parametrize(
    ("given", "airflow", "functions"),
    [({0, 1}, {0}, {1}), ({0, 1, 2}, {0}, {1, 2}), ({3, 1, 2, 0}, {0, 1}, {2, 3})],
)
def test_split_gives_airflow_the_first_half(given: set[int], airflow: set[int], functions: set[int]) -> None:
    assert cpus.split(given) == (airflow, functions)


def test_split_needs_two_cpus() -> None:
    with pytest.raises(ValueError, match="at least 2 CPUs"):
        cpus.split({0})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_this_process_and_what_it_starts_run_on_the_given_cpus_then_are_restored() -> None:
    before = os.sched_getaffinity(0)
    one = {min(before)}
    with cpus.this_process_on(one):
        assert os.sched_getaffinity(0) == one
        child = subprocess.run(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert json.loads(child.stdout) == sorted(one)
    assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_pin_groups_pins_every_thread_of_a_group_we_started() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start()"],
        start_new_session=True,
    )
    try:
        one = {max(os.sched_getaffinity(0))}
        deadline = 50
        while len(os.listdir(f"/proc/{child.pid}/task")) < 2 and deadline:  # the second thread has started
            deadline -= 1
            subprocess.run(["sleep", "0.1"], check=True)
        assert cpus.pin_groups([child.pid], one) >= 2
        assert all(os.sched_getaffinity(int(tid)) == one for tid in os.listdir(f"/proc/{child.pid}/task"))
    finally:
        child.kill()
        child.wait(timeout=10)
