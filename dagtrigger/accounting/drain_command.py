"""``dagtrigger drain``'s options and output (the work is in drain.py)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from .pubsub_rest import check_name

if TYPE_CHECKING:
    from ..pipeline import Pipeline
    from .drain import DrainOptions


def subscription_name(text: str) -> str:
    try:
        return check_name(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _topic(text: str) -> str:
    try:
        return check_name(text.strip(), "topic")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 100000")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = "projects/P/subscriptions/S on the dead-letter topic"
    parser.add_argument("subscription", type=subscription_name, help=where)
    add_source_arguments(parser)
    parser.add_argument("--batch", type=_count, default=100, help="messages per pull (default: %(default)s)")
    parser.add_argument("--max-messages", type=_count, default=1000, help="per run (default: %(default)s)")
    parser.add_argument("--budget", default="10m", help="stop pulling after this long (default: 10m; 0 = no limit)")
    parser.add_argument("--no-verify", action="store_true", help="do not check uploads against Cloud Storage")
    parser.add_argument("--ack-unrouted", action="store_true", help="also acknowledge messages no route takes today")
    parser.add_argument("--dry-run", action="store_true", help="report what would be sent; trigger and ack nothing")
    parser.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Where messages may come from (``drain``, and ``sweep --drain``)."""
    parser.add_argument(
        "--source-subscription",
        action="append",
        type=subscription_name,
        help="the trigger's subscription (projects/P/subscriptions/eventarc-…): only messages forwarded from it are "
        "sent (repeatable; default: any)",
    )
    parser.add_argument("--topic", type=_topic, help="a Pub/Sub-source trigger's topic, projects/P/topics/T")


def options_from(args: argparse.Namespace, subscription: str, dry_run: bool) -> DrainOptions:
    from .drain import DrainOptions
    from .interval import parse_duration

    return DrainOptions(
        subscription=subscription,
        source_subscriptions=tuple(args.source_subscription or ()),
        topic=args.topic,
        batch=args.batch,
        max_messages=args.max_messages,
        budget_s=parse_duration(args.budget).total_seconds(),
        dry_run=dry_run,
        verify_objects=not args.no_verify,
        ack_unrouted=args.ack_unrouted,
    )


def run(args: argparse.Namespace) -> int:
    from .. import function

    try:
        options = options_from(args, args.subscription, args.dry_run)
    except ValueError as exc:
        print(f"drain: {exc}", file=sys.stderr)
        return 2
    pipeline = function.build(log_stream=sys.stderr).pipeline
    return execute(pipeline, options, args.json)


def execute(pipeline: Pipeline, options: DrainOptions, json_path: str | None = None) -> int:
    """One drain with ``pipeline``, its lines printed and its summary logged; the exit status (0, 1 or 2)."""
    from .. import logs
    from ..exceptions import DagtriggerError
    from ..gcs import storage_client
    from ..redaction import printable
    from .drain import drain
    from .pubsub_rest import Subscriber

    if not options.source_subscriptions:
        print("drain: no --source-subscription: messages forwarded from any subscription are accepted", file=sys.stderr)
    try:
        subscriber = Subscriber.from_env(options.subscription, clock=pipeline.clock)
        storage = storage_client() if options.verify_objects else None
        summary = drain(pipeline, subscriber, options, storage)
    except DagtriggerError as exc:
        print(f"drain: {exc}", file=sys.stderr)
        return 2
    document = summary.as_json()
    left = any(document[key] for key in ("retry", "failed", "unrouted", "refused"))
    severity = "WARNING" if left else "INFO"
    logs.get_logger().log(
        logging.getLevelName(severity), "drain summary", extra={"outcome": "drain", "details": {"drain": document}}
    )
    if json_path:
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump(document, out, ensure_ascii=False, indent=2)
    for sample in summary.samples:  # message ids, reasons and names come from the messages: made printable
        runs = "  ".join(f"{r['dag_id']} {r['run_id']}" for r in sample["runs"])
        line = f"{sample['outcome']:<13} {sample['message_id']}  {sample['event'] or '(no event)'}  "
        print(printable(line + (sample["reason"] or runs)).rstrip())
    print(summary.text())
    return 0 if summary.ok else 1
