"""Bounded load and fault runs (``bash devtools/run-load.sh``): N real function processes fed real CloudEvents by a
client that redelivers like Eventarc / Pub/Sub push, against the fake Airflow (faults) or a real one (SQLite, or
PostgreSQL with the scheduler running), every event accounted for afterwards from what the servers recorded.

    bash devtools/run-load.sh --scenario load --events 5000 --instances 4 --concurrency 64 --duplicates 0.1
    bash devtools/run-load.sh --scenario api-restart,pg-restart,race --events 500 --instances 3
    bash devtools/run-load.sh --scenario latency --events 40 --scheduler-settings recommended
    bash devtools/run-load.sh --scenario faults                  # every fake-Airflow fault scenario
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from devtools.localairflow import AirflowServer
from loadtest import cpus
from loadtest.burst import ClientPolicy
from loadtest.scenarios import (
    CONTROL,
    DESCRIPTIONS,
    FAKE_SCENARIOS,
    REAL_SCENARIOS,
    RECOMMENDED_SCHEDULER,
    BurstSpec,
    rig,
    run_fake_scenario,
    run_real,
)
from loadtest.tally import Tally, format_table

# Airflow 3's API server stalls above ~15 concurrent trigger calls with its default pool (5 + 10): a ceiling measured
# there is Airflow's stall, and the ratio to it meaningless (docs/load.md). The default run uses the pool docs/load.md
# measures with; --default-pool or --airflow-setting overrides it.
LOAD_POOL = {"AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "40", "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "40"}
GROUPS = {"faults": (CONTROL, *FAKE_SCENARIOS), "pg-faults": ("api-restart", "pg-restart", "race")}


def _scenarios(text: str) -> list[str]:
    names: list[str] = []
    for part in filter(None, text.split(",")):
        names.extend(GROUPS.get(part, (part,)))
    unknown = [n for n in names if n not in (CONTROL, *FAKE_SCENARIOS, *REAL_SCENARIOS)]
    if unknown:
        known = ", ".join((*GROUPS, CONTROL, *FAKE_SCENARIOS, *REAL_SCENARIOS))
        raise SystemExit(f"unknown scenario {', '.join(unknown)}; known: {known}")
    return names


def _json_number(value: object) -> object:
    """NaN (not measured) as JSON null."""
    return None if isinstance(value, float) and math.isnan(value) else value


def parser() -> argparse.ArgumentParser:
    groups = "\n".join(f"  {group:<13} {', '.join(members)}" for group, members in GROUPS.items())
    scenarios = "\n".join(f"  {name:<13} {text}" for name, text in DESCRIPTIONS.items())
    p = argparse.ArgumentParser(
        prog="bash devtools/run-load.sh",
        description=textwrap.fill(" ".join(__doc__.split("\n\n")[0].split()), 100),
        epilog=f"scenarios (--scenario NAME[,NAME]):\n{scenarios}\ngroups:\n{groups}\n\nMethod, results: docs/load.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--airflow", choices=("sqlite", "postgres"), default="postgres", help="real Airflow's database")
    p.add_argument("--major", type=int, choices=(2, 3), default=3)
    p.add_argument("--instances", type=int, default=4, help="function processes (as Cloud Run instances)")
    p.add_argument("--events", type=int, default=500, help="distinct events per scenario")
    p.add_argument("--concurrency", type=int, default=32, help="client threads")
    p.add_argument("--duplicates", type=float, default=0.1, help="share of events delivered twice (half concurrently)")
    p.add_argument("--max-in-flight", type=int, default=None, help="AIRFLOW_MAX_IN_FLIGHT (default: 8; SQLite 1)")
    p.add_argument("--scenario", default="load", help="comma-separated; groups: faults, pg-faults")
    p.add_argument("--json", type=Path, default=None, help="write one object per scenario here")
    p.add_argument("--poison", type=float, default=None, help="share of poison events (fake scenarios: 0.05)")
    p.add_argument("--ceiling", type=int, default=None, help="direct POSTs first (min(events, 1000))")
    p.add_argument("--no-scheduler", action="store_true", help="PostgreSQL without the scheduler (runs stay queued)")
    p.add_argument(
        "--paused",
        action="store_true",
        help="pause the burst's and the ceiling's DAGs first: only the API path is compared (the scheduler idles)",
    )
    p.add_argument(
        "--split-cpus",
        action="store_true",
        help="Airflow and PostgreSQL on half the CPUs, the client and the function instances on the other half, for "
        "the ceiling and the burst alike (as on Cloud Run, where the function does not use Airflow's CPUs)",
    )
    p.add_argument(
        "--scheduler-settings",
        choices=("default", "recommended"),
        default="default",
        help="recommended: the scheduler settings of docs/load.md (for the latency scenario)",
    )
    p.add_argument(
        "--default-pool",
        action="store_true",
        help="PostgreSQL: keep Airflow's default DB pool (5 + 10); without it the run uses docs/load.md's 40 + 40, "
        "so Airflow's ceiling is not measured inside the pool stall",
    )
    p.add_argument(
        "--airflow-setting",
        action="append",
        default=[],
        metavar="AIRFLOW__SECTION__KEY=VALUE",
        help="extra Airflow setting, repeatable (e.g. AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW=40)",
    )
    p.add_argument("--interval", type=float, default=1.0, help="latency: seconds between events")
    p.add_argument("--threads", type=int, default=None, help="THREADS for functions-framework (default 4×CPUs)")
    p.add_argument("--deadline", type=float, default=900.0, help="the burst stops after this many seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=None, help="keep logs here (default: a temporary dir)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = _scenarios(args.scenario)
    real = [n for n in names if n in REAL_SCENARIOS]
    if "pg-restart" in real and args.airflow != "postgres":
        raise SystemExit("pg-restart needs --airflow postgres")
    if "latency" in real and (args.airflow != "postgres" or args.no_scheduler):
        raise SystemExit("latency needs the scheduler: --airflow postgres without --no-scheduler")
    max_in_flight = args.max_in_flight or (1 if args.airflow == "sqlite" else 8)
    policy = ClientPolicy(deadline_s=args.deadline)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    tallies: list[Tally] = []

    def spec(poison: float) -> BurstSpec:
        return BurstSpec(
            events=args.events,
            concurrency=args.concurrency,
            duplicates=args.duplicates,
            poison=poison if args.poison is None else args.poison,
            seed=args.seed,
        )

    with rig(args.workdir, args.threads, args.verbose, args.instances) as shared, contextlib.ExitStack() as stack:
        for name in (n for n in names if n not in REAL_SCENARIOS):
            tallies.append(run_fake_scenario(shared, name, spec(0.05), policy))
            shared.log(format_table(tallies[-1:]))
        if real:
            scheduler = args.airflow == "postgres" and not args.no_scheduler
            extra = dict(RECOMMENDED_SCHEDULER) if args.scheduler_settings == "recommended" else {}
            if args.airflow == "postgres" and not args.default_pool:
                extra.update(LOAD_POOL)
            for setting in args.airflow_setting:
                name, sep, value = setting.partition("=")
                if not sep or not name.startswith("AIRFLOW__"):
                    raise SystemExit(f"--airflow-setting {setting!r}: write AIRFLOW__SECTION__KEY=VALUE")
                extra[name] = value
            airflow = stack.enter_context(
                AirflowServer(
                    args.major,
                    shared.workdir / f"airflow{args.major}-{args.airflow}",
                    auth="none",
                    database=args.airflow,
                    scheduler=scheduler,
                    extra_env=extra,
                )
            )
            for name in real:
                ceiling = 0
                if name == "load":
                    ceiling = args.ceiling if args.ceiling is not None else min(args.events, 1000)
                side: contextlib.AbstractContextManager[str] = contextlib.nullcontext("")
                if args.split_cpus:
                    side = cpus.split_for(airflow)
                with side as split:
                    counted = run_real(
                        shared, airflow, name, spec(0.0), policy, max_in_flight, ceiling, args.interval, args.paused
                    )
                tallies.append(replace(counted, injected="; ".join(n for n in (counted.injected, split) if n)))
                shared.log(format_table(tallies[-1:]))
    print()
    for t in tallies:
        print(f"{t.scenario}: {DESCRIPTIONS.get(t.scenario, '')}")
    print(format_table(tallies))
    if args.json:
        objects = [{k: _json_number(v) for k, v in t.as_json().items()} for t in tallies]
        args.json.write_text(json.dumps(objects, indent=2) + "\n")
    return 0 if all(t.ok for t in tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
