"""The local end-to-end run: a real Airflow on 127.0.0.1 (PostgreSQL with the scheduler running, as Composer runs
it; ``--no-scheduler``: SQLite, no scheduler, faster), the function under functions-framework, a sample Cloud
Storage upload event sent twice (the second as a redelivery), the resulting DAG run, and — with the scheduler — the
run's final state and the task's log line showing the conf it received.

``--keep`` leaves Airflow and the function running until Ctrl-C, adds a ``trigger_http`` function for webhooks, and
prints their URLs and ready ``dagtrigger send`` lines (the ones docs/troubleshooting.md shows; the docs tests run them
against the same stack, ``local_functions``). The working folder is printed, and removed after a clean run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dagtrigger.send import storage_event
from devtools.localairflow import AirflowServer, Database, venv_installed
from devtools.localfunction import FunctionProcess
from devtools.ports import wait_port_free

DAG_ID = "dagtrigger_example"
TASK_ID = "print_conf"
RUN_DEADLINE_S = 120.0
# send's default URL is the event function's (functions-framework's own default port); webhooks one port up.
EVENT_PORT = 8080
WEBHOOK_PORT = 8081


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


def _port(preferred: int) -> int | None:
    """``preferred`` if nothing listens there (then the docs' lines work as written), else None: a free one."""
    return preferred if wait_port_free(preferred, 0.0) else None


def demo_env(airflow: AirflowServer) -> dict[str, str]:
    """The function's settings in the demo: one route to the example DAG, Airflow without a login."""
    return {"AIRFLOW_URI": airflow.url, "DAG_ID": DAG_ID, "AIRFLOW_AUTH": "none"}


def webhook_function(airflow: AirflowServer, work: Path, port: int | None = None) -> tuple[FunctionProcess, str]:
    """``trigger_http`` in front of ``airflow`` with a fresh signing secret (not started); returns it and the secret."""
    secret = secrets.token_hex(16)
    env = {**demo_env(airflow), "WEBHOOK_HMAC_SECRET": secret}
    return FunctionProcess("trigger_http", env, work, port=port), secret


def send_lines(event_url: str, webhook_url: str) -> list[str]:
    """Ready ``dagtrigger send`` lines for the kept stack (``--url`` only where it is not send's default)."""
    event = "" if event_url == f"http://127.0.0.1:{EVENT_PORT}" else f" --url {event_url}"
    return [
        f"dagtrigger send storage{event} --bucket landing --name incoming/2026-11-24/orders.csv",
        f'dagtrigger send pubsub{event} --data \'{{"table": "orders"}}\' --attribute origin=erp',
        f'dagtrigger send webhook --url {webhook_url} --json \'{{"table": "orders"}}\' --path /dags/{DAG_ID} '
        "--secret-env WEBHOOK_HMAC_SECRET --idempotency-key order-1234",
    ]


def _keep(airflow: AirflowServer, work: Path, event: FunctionProcess) -> None:
    """Serve until Ctrl-C: Airflow, ``event`` and a webhook function, with the lines that exercise them."""
    webhook, secret = webhook_function(airflow, work, _port(WEBHOOK_PORT))
    with webhook:
        print(f"\n--- kept running until Ctrl-C (logs in {work})")
        print(f"Airflow        {airflow.url} (UI and API {airflow.api_prefix}, no login)")
        print(f"trigger_event  {event.url}   (Cloud Storage and Pub/Sub CloudEvents)")
        print(f"trigger_http   {webhook.url}   (webhooks, signed with WEBHOOK_HMAC_SECRET)")
        print("\nIn another shell, from this folder:\n  source .venv/bin/activate")
        print(f"  export WEBHOOK_HMAC_SECRET={secret}")
        for line in send_lines(event.url, webhook.url):
            print(f"  {line}")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while airflow.running and event.proc is not None and event.proc.poll() is None:
                time.sleep(1)


def _raise_keyboard_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--major", type=int, choices=(2, 3), default=3, help="Airflow major version (default 3)")
    parser.add_argument("--object", default="incoming/2026-11-25/orders.csv", help="object name of the upload")
    parser.add_argument(
        "--no-scheduler", action="store_true", help="SQLite and no scheduler: faster, the run stays queued"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave Airflow and the function running until Ctrl-C, add a webhook function, print ready send lines",
    )
    args = parser.parse_args(argv)
    if args.keep:  # a kept stack stops cleanly on SIGTERM as on Ctrl-C
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dagtrigger-demo-"))
    step(f"working folder {work} (logs; removed after a clean run)")
    scheduler = not args.no_scheduler
    how = "PostgreSQL + scheduler" if scheduler else "SQLite, no scheduler"
    first_time = "" if venv_installed(args.major, postgres=scheduler) else "; first run installs it: ~1 min"
    step(f"starting Apache Airflow {args.major}.x on 127.0.0.1 ({how}{first_time})")
    ok = False
    try:
        ok = _demo(args, work, scheduler)
    except KeyboardInterrupt:
        step("interrupted")
    step(f"done in {time.monotonic() - started:.1f} s")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        step(f"kept {work} for its logs")
    return 0 if ok else 1


def _demo(args: argparse.Namespace, work: Path, scheduler: bool) -> bool:
    database: Database = "postgres" if scheduler else "sqlite"
    with AirflowServer(args.major, work, auth="none", database=database, scheduler=scheduler) as airflow:
        step(f"Airflow answers at {airflow.url}{airflow.api_prefix}")
        env = demo_env(airflow)
        port = _port(EVENT_PORT) if args.keep else None
        with FunctionProcess("trigger_event", env, work, port=port) as function:
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
            sys.stdout.flush()
            if args.keep:
                _keep(airflow, work, function)
    return ok


if __name__ == "__main__":
    sys.exit(main())
