"""The sweep's cost: ``python -m bench.sweep [--objects 10000] [--missing 100] [--results bench/RESULTS.md]``.

A bucket of N objects in the storage emulator (fake-gcs-server), a fake Airflow (loadtest/fake_airflow.py) that
already has the runs of all but M of them, and one sweep with the function's own pipeline: how many calls it makes
to Airflow (counted by the sweep, and seen by the fake) and to Cloud Storage, how long it takes, and how many objects
it lists per second. Then a second sweep, which finds nothing: the steady-state cost of a scheduled sweep.

A measurement, not a test: nothing fails when a figure is bad. Every process binds 127.0.0.1; every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dagtrigger import function
from dagtrigger.accounting.interval import Interval
from dagtrigger.accounting.summary import Summary
from dagtrigger.accounting.sweep import SweepOptions, sweep
from dagtrigger.accounting.synthetic import finalized_event
from dagtrigger.run_id import run_id_for
from devtools.storage_emulator import storage_emulator
from loadtest.fake_airflow import CreatedRun, FaultyAirflow

DAG = "bench_ingest"
BUCKET, OPS = "bench-landing", "bench-ops"
MARK_START, MARK_END = "<!-- sweep bench: start -->", "<!-- sweep bench: end -->"


@dataclass(frozen=True)
class Measured:
    label: str
    summary: Summary
    airflow_seen: int  # requests the fake Airflow received

    def row(self) -> str:
        c, s = self.summary.counts, self.summary
        rate = c["objects_listed"] / s.seconds if s.seconds else 0.0
        return (
            f"| {self.label} | {c['objects_listed']:,} | {c['matched']:,} | {c['missing']} | {c['triggered']} | "
            f"{s.airflow_calls} | {self.airflow_seen} | {s.storage_calls} | {s.seconds:.2f} | {rate:,.0f} |"
        )


def _upload(client: Any, n: int) -> None:
    bucket = client.bucket(BUCKET)

    def put(i: int) -> None:
        bucket.blob(f"landing/{i // 1000:02}/part-{i:05}.csv").upload_from_string(b"a,b\n", content_type="text/csv")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(n)))


def run(objects: int, missing: int) -> tuple[list[Measured], float]:
    with storage_emulator() as gcs, FaultyAirflow() as airflow:
        os.environ.update(gcs.env())  # the pipeline's stores use the process's storage client
        gcs.create_bucket(BUCKET)
        gcs.create_bucket(OPS)
        client = gcs.client()
        began = time.monotonic()
        _upload(client, objects)
        upload_s = time.monotonic() - began
        resources = [dict(b._properties) for b in client.list_blobs(BUCKET)]
        every = max(1, len(resources) // max(missing, 1))
        lost = set(range(0, every * missing, every)) if missing else set()
        for i, resource in enumerate(resources):  # the runs the live path already made
            if i not in lost:
                run_id = run_id_for(finalized_event(resource))
                airflow.runs[(DAG, run_id)] = CreatedRun(DAG, run_id, {})
        env = {
            "AIRFLOW_URI": airflow.url,
            "DAG_ID": DAG,
            "AIRFLOW_AUTH": "none",
            "DEAD_LETTER_URI": f"gs://{OPS}/dead-letters",
            "AIRFLOW_MAX_IN_FLIGHT": "8",
        }
        now = datetime.now(UTC)
        options = SweepOptions(Interval(now - timedelta(hours=1), now + timedelta(minutes=1)), buckets=(BUCKET,))
        measured = []
        with open(os.devnull, "w", encoding="utf-8") as quiet:  # the pipeline's log lines
            pipeline = function.build(env, log_stream=quiet).pipeline
            for label in (f"{objects:,} objects, {missing} missing", "the next sweep (nothing missing)"):
                before = len(airflow.server.seen)
                summary = sweep(pipeline, options, client)
                measured.append(Measured(label, summary, len(airflow.server.seen) - before))
        return measured, upload_s


def table(measured: list[Measured], objects: int, missing: int, upload_s: float) -> str:
    first = measured[0].summary
    bound = first.counts["matched"] / 100 + first.counts["missing"]
    lines = [
        MARK_START,
        "## Sweep",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.sweep --objects {objects} "
        f"--missing {missing}` on {os.cpu_count()} cores (Python {platform.python_version()}): the storage emulator "
        "(fake-gcs-server) and the load harness's fake Airflow on 127.0.0.1, one DAG, `AIRFLOW_MAX_IN_FLIGHT=8`. "
        f"Uploading the objects took {upload_s:.0f} s (not counted).",
        "",
        "| sweep | objects listed | pairs matched | missing | triggered | Airflow calls (counted) | Airflow requests "
        "(seen by the fake) | storage calls | seconds | objects listed/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(m.row() for m in measured),
        "",
        f"The bound N/100 + M × (1 + retries) + a small constant is {bound:.0f} + a few here: the sweep made "
        f"{first.airflow_calls} (the version probe, {first.airflow_calls - first.counts['triggered'] - 1} pages "
        f"of 100 runs, {first.counts['triggered']} trigger POSTs). Storage calls are the listing pages (1,000 names "
        "each), the dead-letter listing and the cursor's read and clear. The listing rate is the emulator's, on a "
        "shared 2-core machine; Cloud Storage pages are of the same size, so the number of calls carries over.",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if MARK_START in old and MARK_END in old:
        head, _, rest = old.partition(MARK_START)
        _, _, tail = rest.partition(MARK_END + "\n")
        path.write_text(head + text + tail, encoding="utf-8")
    else:
        path.write_text(old.rstrip("\n") + "\n\n" + text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000, help="objects in the bucket (default: %(default)s)")
    parser.add_argument("--missing", type=int, default=100, help="of which have no run (default: %(default)s)")
    parser.add_argument("--results", type=Path, help="also write the table into this Markdown file (its Sweep section)")
    args = parser.parse_args(argv)
    measured, upload_s = run(args.objects, args.missing)
    text = table(measured, args.objects, args.missing, upload_s)
    print(text)
    if args.results:
        write(args.results, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
