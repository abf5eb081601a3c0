"""The local end-to-end run: a real Airflow on 127.0.0.1 (PostgreSQL with the scheduler running, as Composer runs
it; ``--no-scheduler``: SQLite, no scheduler, faster), the function under functions-framework, a sample Cloud
Storage upload event sent twice (the second as a redelivery), the resulting DAG run, and — with the scheduler — the
run's final state and the task's log line showing the conf it received.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dagtrigger.send import storage_event
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess

DAG_ID = "dagtrigger_example"
TASK_ID = "print_conf"
RUN_DEADLINE_S = 120.0


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


def wait_for_run(airflow: AirflowServer, run_id: str, deadline_s: float = RUN_DEADLINE_S) -> str:
    """The run's state once it is final (success or failed), or the last state seen when the deadline passes."""
    run = airflow.wait_run(DAG_ID, run_id, deadline_s)
    return str(run["state"]) if run else "missing"


def _log_lines(body: Any) -> list[str]:
    """Task-log lines from either major: Airflow 3 gives structured events, Airflow 2 one text blob."""
    if isinstance(body, dict) and isinstance(body.get("content"), list):
        lines: list[str] = []
        for item in body["content"]:
            if isinstance(item, dict):
                lines.append(str(item.get("event", "")))
            else:  # Airflow 2: [(host, text)] rendered as a list of pairs
                lines.extend(str(item[-1] if isinstance(item, list | tuple) else item).splitlines())
        return lines
    if isinstance(body, dict):
        return str(body.get("content", "")).splitlines()
    return str(body).splitlines()


def conf_log_line(airflow: AirflowServer, run_id: str) -> str | None:
    """The line the example task printed (``conf: {...}``), read through Airflow's task-log API."""
    path = f"{airflow.api_prefix}/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/logs/1"
    answer = airflow.request("GET", f"{path}?full_content=true")
    if answer.status != 200:
        return None
    for line in _log_lines(answer.body):
        if "conf:" in line:
            return line[line.index("conf:") :].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--major", type=int, choices=(2, 3), default=3, help="Airflow major version (default 3)")
    parser.add_argument("--object", default="incoming/2026-11-25/orders.csv", help="object name of the upload")
    parser.add_argument(
        "--no-scheduler", action="store_true", help="SQLite and no scheduler: faster, the run stays queued"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dagtrigger-demo-"))
    scheduler = not args.no_scheduler
    database = "postgres" if scheduler else "sqlite"
    how = "PostgreSQL + scheduler" if scheduler else "SQLite, no scheduler"
    step(f"starting Apache Airflow {args.major}.x on 127.0.0.1 ({how}; first run installs it: ~1 min)")
    with AirflowServer(args.major, work, auth="none", database=database, scheduler=scheduler) as airflow:
        step(f"Airflow answers at {airflow.url}{airflow.api_prefix}")
        env = {"AIRFLOW_URI": airflow.url, "DAG_ID": DAG_ID, "AIRFLOW_AUTH": "none"}
        with FunctionProcess("trigger_event", env, work) as function:
            step(f"function trigger_event served by functions-framework at {function.url}")
            event = storage_event(function.url, "demo-landing", args.object, metadata={"source": "demo"})
            step(f"sending {event.summary}")
            first = function.post(headers=dict(event.headers), data=event.body)
            step(f"function answered {first.status_code}; sending it again as a redelivery (new event id)")
            again = storage_event(
                function.url,
                "demo-landing",
                args.object,
                generation=json.loads(event.body)["generation"],
                metadata={"source": "demo"},
            )
            second = function.post(headers=dict(again.headers), data=again.body)
            step(f"function answered {second.status_code}")
            print("\n--- function log (JSON lines, as Cloud Logging reads them)")
            for entry in function.logs():
                print(json.dumps(entry, ensure_ascii=False))
        runs = airflow.list_runs(DAG_ID)
        print(f"\n--- DAG runs of {DAG_ID} in Airflow ({len(runs)}: one upload, two deliveries, one run)")
        for run in runs:
            shown = {k: run.get(k) for k in ("dag_run_id", "state", "run_type", "conf")}
            print(json.dumps(shown, indent=2, ensure_ascii=False))
        ok = first.status_code == 200 and second.status_code == 200 and len(runs) == 1
        if scheduler and runs:
            run_id = str(runs[0]["dag_run_id"])
            step("waiting for the scheduler to run it")
            state = wait_for_run(airflow, run_id)
            line = conf_log_line(airflow, run_id)
            print(f"\n--- run {run_id}: {state}")
            print(f"--- task {TASK_ID} log: {line or '(no conf line found)'}")
            ok = ok and state == "success" and line is not None and args.object in line
    step(f"done in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
