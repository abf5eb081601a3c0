"""Operator commands: ``python -m dagtrigger replay|check|send``. They reuse the pipeline, never a copy of it."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from .clock import parse_utc
from .exceptions import ConfigError


def _when(text: str) -> datetime:
    try:
        return parse_utc(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time such as 2026-11-24T10:00:00Z") from None


def replay(args: argparse.Namespace) -> int:
    """Re-send dead letters through the pipeline; each record is marked with the outcome, never deleted."""
    from .deadletter import DeadLetterStore, event_from_record
    from .outcome import OutcomeKind
    from .pipeline import Pipeline

    store = DeadLetterStore(args.uri)
    pipeline = None if args.dry_run else Pipeline.from_env(log_stream=sys.stderr)
    counts: Counter[str] = Counter()
    records = store.list(
        dag_id=args.dag, since=args.since, until=args.until, include_replayed=args.include_replayed, limit=args.limit
    )
    for name, record in records:
        if pipeline is None:
            print(f"would replay  {record.dag_id}  {record.run_id}  ({record.reason[:100]})  {name}")
            counts["would replay"] += 1
            continue
        outcome = pipeline.replay(event_from_record(record), record.dag_id, record.route, record.run_id)
        store.mark_replayed(name, outcome.kind.value, outcome.reason)
        print(f"{outcome.kind.value:<10} {record.dag_id}  {record.run_id}  {outcome.reason[:120]}")
        counts[outcome.kind.value] += 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no dead letters matched"
    print(f"replay: {summary}", file=sys.stderr)
    failed = counts[OutcomeKind.FAILED.value] + counts[OutcomeKind.RETRY.value]
    return 1 if failed else 0


def check(args: argparse.Namespace) -> int:
    """Walk the path an event takes with the function's own settings; each ✗ comes with its fix."""
    import os

    from .check import main as check_main

    return check_main(os.environ, args.json, args.timeout)


def send(args: argparse.Namespace) -> int:
    """Post one sample event to a function and print its answer."""
    from .send import run as send_run

    return send_run(args)


def _parser() -> argparse.ArgumentParser:
    from .send import add_arguments as send_arguments

    parser = argparse.ArgumentParser(prog="python -m dagtrigger", description=__doc__)
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
    ck.set_defaults(run=check)
    sd = commands.add_parser(
        "send",
        help="send a sample storage, Pub/Sub or webhook event to a local or deployed function",
        description="Send one realistic event to the function (CloudEvents in binary mode, as Eventarc delivers "
        "them; webhooks as JSON, signed when a secret is given) and print its answer. Exit 0 on a 2xx answer.",
    )
    send_arguments(sd)
    sd.set_defaults(run=send)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
