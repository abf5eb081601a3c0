"""Operator commands (``dagtrigger --help`` lists them; also ``python -m dagtrigger …``). Those that reach
Airflow build the function with ``function.build`` and reuse its pipeline, never a copy of it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .clock import parse_utc
from .exceptions import ConfigError
from .settings import ENTRY_POINTS


def _when(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2026-11-24T10:00:00Z") from None


def replay(args: argparse.Namespace) -> int:
    """Re-send dead letters through the pipeline as their routes would send them today; each record is marked with
    the outcome, never deleted. A record that cannot be verified is refused, one that cannot be read is skipped;
    both are reported and the replay goes on. Everything printed from a record is made printable first."""
    from . import function
    from .deadletter import DeadLetterStore
    from .exceptions import BadDeadLetter
    from .outcome import OutcomeKind
    from .redaction import printable

    store = DeadLetterStore(args.uri)
    pipeline = None if args.dry_run else function.build(log_stream=sys.stderr).pipeline
    counts: Counter[str] = Counter()

    def skipped(name: str, reason: str) -> None:
        print(f"skipped    {printable(name)}: {printable(reason[:200])}")
        counts["skipped"] += 1

    records = store.list(
        dag_id=args.dag,
        since=args.since,
        until=args.until,
        include_replayed=args.include_replayed,
        limit=args.limit,
        on_skip=skipped,
    )
    for name, record in records:
        shown = printable(f"{record.dag_id}  {record.run_id}")
        if pipeline is None:
            seal = "seal" if record.seal else "no seal"  # present or not; verified only by a real replay
            print(f"would replay  {shown}  [{seal}]  ({printable(record.reason[:100])})  {printable(name)}")
            counts["would replay"] += 1
            continue
        try:
            result = pipeline.replay(record, accept_unsealed=args.accept_unsealed)
        except BadDeadLetter as exc:
            print(f"refused    {shown}  {printable(str(exc)[:200])}  {printable(name)}")
            counts["refused"] += 1
            continue
        outcome = result.outcome
        store.mark_replayed(name, outcome.kind.value, outcome.reason)
        sent = printable(f"{result.target.dag_id}  {result.run_id}")
        print(f"{outcome.kind.value:<10} {sent}  {printable(outcome.reason[:120])}")
        counts[outcome.kind.value] += 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no dead letters matched"
    print(f"replay: {summary}", file=sys.stderr)
    failed = counts[OutcomeKind.FAILED.value] + counts[OutcomeKind.RETRY.value] + counts["refused"] + counts["skipped"]
    return 1 if failed else 0


def check(args: argparse.Namespace) -> int:
    """Walk the path an event takes with the function's own settings; each ✗ comes with its fix."""
    import os

    from .check import main as check_main

    return check_main(os.environ, args.json, args.timeout, args.object, args.entry_point)


def send(args: argparse.Namespace) -> int:
    """Post one sample event to a function and print its answer."""
    from .send import run as send_run

    return send_run(args)


def why(args: argparse.Namespace) -> int:
    """Explain one upload route by route; exit 0 whatever the verdict, 2 when Cloud Storage or Airflow cannot be
    read."""
    from . import function
    from .accounting.why import dumps, text
    from .accounting.why import why as explain_object
    from .exceptions import DagtriggerError
    from .gcs import storage_client

    pipeline = function.build(log_stream=sys.stderr).pipeline
    try:
        answer = explain_object(pipeline, storage_client(), args.object, args.generation)
    except (ValueError, DagtriggerError) as exc:
        print(f"why: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # google-cloud-storage's errors: say which call, never a stack trace
        print(f"why: could not read {args.object}: {type(exc).__name__}: {str(exc)[:300]}", file=sys.stderr)
        return 2
    print(dumps(answer) if args.json else text(answer))
    return 0


def sweep(args: argparse.Namespace) -> int:
    """Account for every upload of an interval and send the missing ones; exit 1 when anything failed."""
    import json

    from . import function, logs
    from .accounting.interval import interval, parse_duration
    from .accounting.sweep import SweepOptions
    from .accounting.sweep import sweep as run_sweep
    from .exceptions import DagtriggerError
    from .gcs import storage_client

    pipeline = function.build(log_stream=sys.stderr).pipeline
    drained = _drain_first(args, pipeline)
    now = pipeline.clock.now()
    try:
        window = interval(args.since, args.until, args.settle, now)
        budget = parse_duration(args.budget).total_seconds()
    except ValueError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    options = SweepOptions(
        interval=window,
        routes=tuple(args.route) if args.route else None,
        buckets=tuple(args.bucket or ()),
        dry_run=args.dry_run,
        budget_s=budget,
        resume=not args.no_resume,
    )
    try:
        summary = run_sweep(pipeline, options, storage_client(), now)
    except DagtriggerError as exc:
        print(f"sweep: {exc}", file=sys.stderr)
        return 2
    document = summary.as_json()
    severity = "WARNING" if document["missing"] or document["failed"] else "INFO"
    logs.get_logger().log(
        logging.getLevelName(severity), "sweep summary", extra={"outcome": "sweep", "details": {"sweep": document}}
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False, indent=2)
    for pair in summary.missing_pairs:
        verb = "would send" if summary.dry_run else "missing"
        print(f"{verb:<10} {pair['object']}  route {pair['route']}  run {pair['run_id']}")
    for failure in summary.failures:
        print(f"failed     {failure['object']}  route {failure['route']}: {failure['reason']}")
    print(summary.text())
    return max(drained, 0 if summary.ok else 1)


def _drain_first(args: argparse.Namespace, pipeline: Any) -> int:
    """``sweep --drain SUBSCRIPTION``: the dead-letter topic's events go first (its exit status, 0 without one)."""
    if not args.drain:
        return 0
    from .accounting.drain_command import execute, options_from

    args.batch, args.max_messages, args.budget, args.no_verify, args.ack_unrouted = 100, 10_000, "10m", False, False
    return execute(pipeline, options_from(args, args.drain, args.dry_run))


def drain(args: argparse.Namespace) -> int:
    """Send what a trigger's dead-letter topic kept; exit 1 when a message is left, 2 when Pub/Sub cannot be used."""
    from .accounting.drain_command import run as run_drain

    return run_drain(args)


def _parser() -> argparse.ArgumentParser:
    from .accounting.drain_command import add_arguments as drain_arguments
    from .accounting.drain_command import add_source_arguments as drain_sources
    from .accounting.drain_command import subscription_name as drain_subscription
    from .send import add_arguments as send_arguments

    parser = argparse.ArgumentParser(prog="dagtrigger", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    rp = commands.add_parser(
        "replay",
        help="re-send dead letters (the same settings as the function: AIRFLOW_URI, AIRFLOW_AUTH, …)",
        description="Re-send dead letters through the same pipeline. A record whose run already exists is "
        "recognised (Airflow answers 409) and counted as duplicate, not doubled. Records are marked, never deleted.",
    )
    rp.add_argument("uri", help="the dead-letter location, gs://bucket/prefix (DEAD_LETTER_URI)")
    rp.add_argument("--dry-run", action="store_true", help="list what would be replayed; call nothing")
    rp.add_argument("--dag", help="only records for this DAG id")
    rp.add_argument("--since", type=_when, help="only records first recorded at or after this time (ISO-8601)")
    rp.add_argument("--until", type=_when, help="only records first recorded before this time (ISO-8601)")
    rp.add_argument("--include-replayed", action="store_true", help="also records already replayed successfully")
    rp.add_argument("--limit", type=int, help="at most this many records")
    rp.add_argument(
        "--accept-unsealed",
        action="store_true",
        help="also replay records without a seal (written before DEAD_LETTER_SEAL_SECRET was set, or Pub/Sub "
        "records when replay holds no key); list them first, since anyone who can write the bucket can write one. "
        "A seal that does not verify is refused anyway",
    )
    rp.set_defaults(run=replay)
    ck = commands.add_parser(
        "check",
        help="check that this configuration can trigger its DAGs (the same settings as the function)",
        description="Check step by step that the function's configuration (AIRFLOW_URI, AIRFLOW_AUTH, DAG_ID or "
        "ROUTES_FILE, …) can trigger every DAG it names: identity, network, API version, authentication, each DAG "
        "(exists, not paused, may be triggered). Creates no DAG run. Exit 0 when nothing failed (warnings allowed).",
    )
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    ck.add_argument("--timeout", type=float, default=10.0, help="seconds per network call (default: %(default)g)")
    ck.add_argument("--object", metavar="gs://BUCKET/NAME", help="also say what became of this upload (as `why`)")
    ck.add_argument(
        "--entry-point",
        choices=ENTRY_POINTS,
        help="validate the configuration as this entry point would start (default: FUNCTION_TARGET, else "
        "trigger_event)",
    )
    ck.set_defaults(run=check)
    sd = commands.add_parser(
        "send",
        help="send a sample storage, Pub/Sub or webhook event to a local or deployed function",
        description="Send one realistic event to the function (CloudEvents in binary mode, as Eventarc delivers "
        "them; webhooks as JSON, signed when a secret is given) and print its answer. Exit 0 on a 2xx answer.",
    )
    send_arguments(sd)
    sd.set_defaults(run=send)
    wy = commands.add_parser(
        "why",
        help="explain what became of one upload, route by route (the same settings as the function)",
        description="Read the object's metadata, rebuild the event the function received for its upload, and say "
        "for every route: matched or why not, the run id and the run's state, any dead letter, the batch member; "
        "then one verdict per route: triggered, dead_lettered, ignored, pending or missing. Reads only. Exit 0 "
        "whatever the verdict; 2 when Cloud Storage or Airflow cannot be read.",
    )
    wy.add_argument("object", help="gs://BUCKET/NAME")
    wy.add_argument("--generation", help="that version of the object (default: the live one)")
    wy.add_argument("--json", action="store_true", help="one JSON object: object, routes")
    wy.set_defaults(run=why)
    sw = commands.add_parser(
        "sweep",
        help="find uploads that never triggered their DAG and send them through the pipeline",
        description="List the objects the storage routes cover (narrowed by bucket, prefix and glob), created in "
        "the interval, and account for each (object version, route) pair: present (run or batch member), "
        "dead-lettered (use replay), ignored, or missing. Missing ones are sent through the same pipeline as live "
        "events (same run id, conf and batching; conf _event.via = sweep), so racing a redelivery or another sweep "
        "still gives one run. Airflow's runs are read in pages, not per object. Exit 1 when anything failed.",
    )
    sw.add_argument("--since", required=True, help="DURATION before now (30s, 90m, 26h, 7d) or an ISO-8601 UTC time")
    sw.add_argument("--until", help="DURATION before now or ISO-8601 UTC time (default: now)")
    sw.add_argument("--route", action="append", help="only this route (repeatable)")
    sw.add_argument(
        "--bucket", action="append", help="bucket(s) to list for routes that name none (the DAG_ID shortcut)"
    )
    sw.add_argument("--settle", default="5m", help="leave objects younger than this to the live path (default: 5m)")
    sw.add_argument("--budget", default="0", help="stop after this long and leave a cursor (default: 0 = no limit)")
    sw.add_argument("--no-resume", action="store_true", help="ignore a cursor left by an earlier sweep")
    sw.add_argument("--dry-run", action="store_true", help="report what is missing; trigger nothing")
    sw.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")
    sw.add_argument(
        "--drain",
        metavar="SUBSCRIPTION",
        type=drain_subscription,
        help="first drain this subscription on the trigger's dead-letter topic (as `dagtrigger drain`)",
    )
    drain_sources(sw)
    sw.set_defaults(run=sweep)
    dr = commands.add_parser(
        "drain",
        help="send the events an Eventarc trigger's dead-letter topic kept, through the same pipeline",
        description="Pull the messages of a subscription on an Eventarc trigger's dead-letter topic, rebuild the "
        "event each carried, and send it through the same pipeline as live events (same run id: a run that already "
        "exists is a duplicate, not a second run). A message is acknowledged only once every route it goes to has a "
        "run, a batch member or a written dead letter; the rest stay in the subscription. Exit 1 when any is left.",
    )
    drain_arguments(dr)
    dr.set_defaults(run=drain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
