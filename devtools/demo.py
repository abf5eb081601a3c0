"""The local end-to-end run: a real Airflow 3 on 127.0.0.1, the function under functions-framework, a sample
Cloud Storage upload event sent twice (the second as a redelivery), and the resulting DAG run printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess

DAG_ID = "dagtrigger_example"


def step(text: str) -> None:
    print(f"==> {text}", file=sys.stderr, flush=True)


def sample_upload(bucket: str, name: str, event_id: str) -> tuple[dict[str, str], dict[str, object]]:
    """A Cloud Storage finalize event exactly as Eventarc delivers it (binary CloudEvent, object resource as data)."""
    generation = str(int(time.time() * 1_000_000))
    attrs = {
        "id": event_id,
        "type": "google.cloud.storage.object.v1.finalized",
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "subject": f"objects/{name}",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "bucket": bucket,
    }
    data = {
        "kind": "storage#object",
        "bucket": bucket,
        "name": name,
        "generation": generation,
        "metageneration": "1",
        "contentType": "text/csv",
        "size": "2048",
        "metadata": {"source": "demo"},
        "timeCreated": attrs["time"],
        "updated": attrs["time"],
    }
    return attrs, data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--major", type=int, choices=(2, 3), default=3, help="Airflow major version (default 3)")
    parser.add_argument("--object", default="incoming/2026-11-25/orders.csv", help="object name of the upload")
    args = parser.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dagtrigger-demo-"))
    step(f"starting Apache Airflow {args.major}.x on 127.0.0.1 (SQLite in {work}; first run installs it: ~1 min)")
    with AirflowServer(args.major, work, auth="none") as airflow:
        step(f"Airflow answers at {airflow.url}{airflow.api_prefix}")
        env = {"AIRFLOW_URI": airflow.url, "DAG_ID": DAG_ID, "AIRFLOW_AUTH": "none"}
        with FunctionProcess("trigger_event", env, work) as function:
            step(f"function trigger_event served by functions-framework at {function.url}")
            attrs, data = sample_upload("demo-landing", args.object, "demo-event-1")
            step(f"sending a Cloud Storage upload event for gs://{data['bucket']}/{data['name']}")
            first = function.send_event(attrs, data)
            step(f"function answered {first.status_code}; sending it again as a redelivery (new event id)")
            second = function.send_event({**attrs, "id": "demo-event-2"}, data)
            step(f"function answered {second.status_code}")
            print("\n--- function log (JSON lines, as Cloud Logging reads them)")
            for entry in function.logs():
                print(json.dumps(entry, ensure_ascii=False))
        runs = airflow.list_runs(DAG_ID)
        print(f"\n--- DAG runs of {DAG_ID} in Airflow ({len(runs)}: one upload, two deliveries, one run)")
        for run in runs:
            shown = {k: run.get(k) for k in ("dag_run_id", "state", "run_type", "conf")}
            print(json.dumps(shown, indent=2, ensure_ascii=False))
    step(f"done in {time.monotonic() - started:.1f} s")
    ok = first.status_code == 200 and second.status_code == 200 and len(runs) == 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
