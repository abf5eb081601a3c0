"""The load and fault scenarios: N real functions-framework processes (as N Cloud Run instances) fed by the load
client, against the fake Airflow (faults injected by switch) or a real Airflow (SQLite, or PostgreSQL with the
scheduler running: runs really execute), each ending in a Tally counted from what the servers recorded.
"""

from __future__ import annotations

import contextlib
import datetime
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dagtrigger.conf import build_conf
from dagtrigger.events import from_cloud_event
from dagtrigger.send import pubsub_event, storage_event
from devtools.fakes import FakeMetadataServer
from devtools.localairflow import AirflowServer
from devtools.localfunction import FunctionProcess
from devtools.storage_emulator import StorageEmulator, storage_emulator
from loadtest.burst import BurstResult, Chaos, ClientPolicy, Progress, burst, paced
from loadtest.deliveries import MAX_CONF_BYTES, LoadEvent, key_from_conf, make_events, plan_deliveries
from loadtest.fake_airflow import Fault, FaultKind, FaultyAirflow
from loadtest.tally import NAN, Meter, Tally, percentile, settle, tally

DAG = "dagtrigger_example"
CEILING_DAG = "dagtrigger_other"  # Airflow's own ceiling is measured on another DAG: its runs never mix with ours
BUCKET = "load-dead-letters"
TOKEN_PREFIX = "ya29.fake-access-token"
DEFAULT_POLICY = ClientPolicy()
TO_RUNNING_WAIT_S = 180.0  # after the last event, wait at most this long for first tasks to start

# Scheduler settings measured against the defaults for event → first task running (bench/RESULTS.md): a shorter
# idle sleep picks queued runs up sooner; parsing the DAG files less often leaves the 2 CPUs to scheduling.
RECOMMENDED_SCHEDULER = {
    "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",  # Airflow 3
    "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "300",  # Airflow 2
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__SCHEDULER__PARSING_PROCESSES": "1",
}


def read_dead_letters(gcs: StorageEmulator, prefix: str) -> list[dict[str, Any]]:
    client = gcs.client()
    return [json.loads(blob.download_as_bytes()) for blob in client.list_blobs(BUCKET, prefix=f"{prefix}/")]


def airflow_run_confs(airflow: AirflowServer) -> list[dict[str, Any]]:
    return [run.get("conf") or {} for run in airflow.list_runs(DAG)]


def airflow_run_count(airflow: AirflowServer) -> int:
    try:
        answer = airflow.request("GET", f"{airflow.api_prefix}/dags/{DAG}/dagRuns?limit=1")
    except Exception:  # Airflow or its database still coming back after a fault: not counted yet
        return -1
    return int(answer.body.get("total_entries", 0)) if isinstance(answer.body, dict) else -1


def format_injected(answers: Mapping[str, int]) -> str:
    faults = {k: v for k, v in sorted(answers.items()) if k not in ("200", "409", "read")}
    return " ".join(f"{k}×{v}" for k, v in faults.items())


@dataclass(frozen=True)
class BurstSpec:
    """The shape of one burst; the defaults are the modest sizes the pytest wrappers use."""

    events: int = 300
    concurrency: int = 16
    duplicates: float = 0.1
    concurrent_duplicates: float = 0.5
    pubsub: float = 0.25
    poison: float = 0.05
    seed: int = 1


@dataclass
class Rig:
    """What scenarios share: a work directory, the Cloud Storage emulator that holds the dead letters, and how many
    function instances each scenario starts."""

    workdir: Path
    gcs: StorageEmulator
    threads: int | None = None  # THREADS for functions-framework (None: its default, 4 per CPU)
    log: Callable[[str], None] = field(default=lambda text: None)
    instances: int = 1

    def env(self, airflow_url: str, prefix: str, **extra: str) -> dict[str, str]:
        env = {
            "AIRFLOW_URI": airflow_url,
            "DAG_ID": DAG,
            "AIRFLOW_AUTH": "none",
            "AIRFLOW_TIMEOUT_SECONDS": "1",
            "AIRFLOW_RETRY_BUDGET_SECONDS": "2",
            "MAX_CONF_BYTES": str(MAX_CONF_BYTES),
            "DEAD_LETTER_URI": f"gs://{BUCKET}/{prefix}",
            **self.gcs.env(),
        }
        if self.threads:
            env["THREADS"] = str(self.threads)
        env.update(extra)
        return env


def _tag(name: str) -> str:
    return f"{name}-{os.getpid()}-{int(time.time() * 1000) % 10_000_000}"


def _fault_steps(airflow: FaultyAirflow, steps: Sequence[tuple[str, float, Fault | None]]) -> Chaos:
    """``(when, amount, fault)`` steps run in order: ``("acked", 0.1, f)`` sets f once 10 % of deliveries are
    acknowledged, ``("after", 3.0, f)`` sets f 3 s after the previous step. The last fault is always cleared."""

    def chaos(progress: Progress) -> None:
        try:
            for when, amount, fault in steps:
                if when == "acked":
                    progress.wait_acked(amount)
                else:
                    progress.sleep(amount)
                airflow.set_fault(fault)
        finally:
            airflow.set_fault(None)

    return chaos


def plan(events: Sequence[LoadEvent], spec: BurstSpec, n_instances: int) -> list[Any]:
    return plan_deliveries(
        events,
        duplicates=spec.duplicates,
        concurrent=spec.concurrent_duplicates,
        concurrency=spec.concurrency,
        instances=n_instances,
        seed=spec.seed + 1,
    )


def shape(rig: Rig, spec: BurstSpec, max_in_flight: int, airflow: str) -> dict[str, Any]:
    """The Tally fields that describe the set-up of a run."""
    return {
        "instances": rig.instances,
        "concurrency": spec.concurrency,
        "max_in_flight": max_in_flight,
        "airflow": airflow,
    }


def describe(airflow: AirflowServer) -> str:
    return f"{airflow.version} {airflow.database}{' scheduler' if airflow.scheduler else ''}"


@contextlib.contextmanager
def instances(env: Mapping[str, str], rig: Rig) -> Iterator[list[FunctionProcess]]:
    """``rig.instances`` function processes, each its own functions-framework server, token cache and session."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(FunctionProcess("trigger_event", env, rig.workdir)) for _ in range(rig.instances)]


def dead_letter_races(functions: Sequence[FunctionProcess]) -> str:
    """What the instances' logs say about dead-letter writes that lost a race (412) to another instance writing the
    same record: how many such writes, how many races they lost (the most for one write), how many gave up; "" when
    none lost a race."""
    entries = [e for f in functions for e in f.logs()]
    lost = [int(e["lost_races"]) for e in entries if "lost_races" in e]
    gave_up = sum(1 for e in entries if "changed by other writers" in str(e.get("message", "")))
    if not lost and not gave_up:
        return ""
    return (
        f"dead-letter writes that lost races {len(lost)} (races lost {sum(lost)}, most for one write "
        f"{max(lost, default=0)}), given up {gave_up}"
    )


STORM_S = 5.0
TOKEN_OUTAGE_S = 20.0  # longer than google-auth's own metadata retries (5 attempts, ~15 s of backoff)
HANG_S = 2.5  # > AIRFLOW_TIMEOUT_SECONDS=1 of the function: its read times out while the run is being created


def _steps_for(name: str) -> tuple[list[tuple[str, float, Fault | None]], str]:
    """The fault steps of each fake-Airflow scenario, and the poison kind its events carry."""
    status = FaultKind.STATUS
    table: dict[str, tuple[list[tuple[str, float, Fault | None]], str]] = {
        CONTROL: ([], "refused"),
        "storm503": ([("acked", 0.1, Fault(status, 503)), ("after", STORM_S, None)], "oversize"),
        "throttle429": (
            [
                ("acked", 0.1, Fault(status, 429, retry_after="1", share=0.5)),  # honoured in process
                ("after", 2.5, Fault(status, 429, retry_after="30")),  # beyond the budget: answered 503 at once
                ("after", 2.0, None),
            ],
            "oversize",
        ),
        "hang": (
            [
                # The run is created, the answer comes after the function's read timeout: its retry must get 409.
                ("acked", 0.0, Fault(FaultKind.HANG, delay_s=HANG_S, first_attempts=2, share=0.3)),
                # Three late answers outlast the 2 s retry budget: the function answers 503, the client redelivers.
                ("acked", 0.5, Fault(FaultKind.HANG, delay_s=HANG_S, first_attempts=3, share=0.3)),
                ("acked", 0.9, None),
            ],
            "oversize",
        ),
        "reset": (
            [
                ("acked", 0.0, Fault(FaultKind.RESET_BEFORE, first_attempts=2, share=0.5)),
                ("acked", 0.35, Fault(FaultKind.RESET_AFTER, first_attempts=2, share=0.5)),
                # Eight resets in a row exhaust urllib3's attempts: 503 to the client, redelivered, then 409.
                ("acked", 0.7, Fault(FaultKind.RESET_AFTER, first_attempts=8, share=0.2)),
                ("acked", 0.95, None),
            ],
            "refused",
        ),
        "html": (
            [
                ("acked", 0.1, Fault(FaultKind.HTML, 502)),  # a proxy's error page for everything
                ("after", STORM_S, Fault(FaultKind.HTML, 500, first_attempts=2, share=0.5)),  # Airflow 2's page
                ("acked", 0.8, None),
            ],
            "refused",
        ),
    }
    return table[name]


CONTROL = "healthy"  # no fault: the function's own pace, and proof the counting adds up when nothing goes wrong
FAKE_SCENARIOS = ("storm503", "throttle429", "hang", "reset", "token", "html")
DESCRIPTIONS = {
    CONTROL: "control: the fake Airflow answers every call at once, no fault",
    "storm503": f"(a) every trigger call answered 503 for {STORM_S:g} s mid-burst, then recovery",
    "throttle429": "(b) 429 with Retry-After: 1 (half the runs), then Retry-After: 30 (beyond the budget), then ok",
    "hang": f"(c) run created but the answer {HANG_S:g} s late (function read timeout 1 s), 1-3 times per run",
    "reset": "(d) TCP reset before / after the run is created, up to 8 times in a row",
    "api-restart": "(e) real Airflow's API server SIGKILLed mid-burst and started again (the scheduler keeps going)",
    "pg-restart": "(h) PostgreSQL itself crashed (immediate shutdown) mid-burst, down 2 s, started again",
    "race": "(i) every event delivered twice at the same moment to two instances: the unique constraint decides",
    "latency": "event → first task running: events one at a time, the scheduler running",
    "token": f"(f) AIRFLOW_AUTH=google, the metadata server fails to issue tokens for {TOKEN_OUTAGE_S:g} s mid-burst",
    "html": "(g) HTML error pages (502 from a proxy, 500 from Airflow 2) instead of JSON; poison runs get a 400 page",
    "load": "burst against real Airflow, N instances; throughput beside Airflow's own ceiling at the same concurrency",
}


def run_fake_scenario(
    rig: Rig, name: str, spec: BurstSpec = BurstSpec(), policy: ClientPolicy = DEFAULT_POLICY
) -> Tally:
    """One fault scenario against the fake Airflow (``FAKE_SCENARIOS``)."""
    tag = _tag(name)
    metadata: FakeMetadataServer | None = None
    chaos: Chaos
    with contextlib.ExitStack() as stack:
        if name == "token":
            # Tokens live 300 s, renewed 300 s before expiry: every call fetches one, so the outage bites at once.
            metadata = stack.enter_context(FakeMetadataServer(lifetime_s=300))
            airflow = stack.enter_context(FaultyAirflow(required_token_prefix=TOKEN_PREFIX))
            env = rig.env(airflow.url, tag, AIRFLOW_AUTH="google", **metadata.env())
            poison_kind = "oversize"

            def outage(progress: Progress) -> None:
                assert metadata is not None
                try:
                    progress.wait_acked(0.1)
                    metadata.fail_tokens = True
                    progress.sleep(TOKEN_OUTAGE_S)
                finally:
                    metadata.fail_tokens = False

            chaos = outage

        else:
            airflow = stack.enter_context(FaultyAirflow())
            steps, poison_kind = _steps_for(name)
            env = rig.env(airflow.url, tag)
            chaos = _fault_steps(airflow, steps)
        events = make_events(
            tag, spec.events, pubsub=spec.pubsub, poison=spec.poison, poison_kind=poison_kind, seed=spec.seed
        )
        deliveries = plan(events, spec, rig.instances)
        functions = stack.enter_context(instances(env, rig))
        rig.log(f"{name}: {len(deliveries)} deliveries of {len(events)} events at concurrency {spec.concurrency}")
        before = Meter.read(functions)
        result = burst([f.url for f in functions], deliveries, spec.concurrency, policy, chaos)
        cpu = before.usage(Meter.read(functions), len(deliveries))
        settle(lambda: len(airflow.runs) + len(rig.gcs.objects(BUCKET, f"{tag}/")))
        injected = "; ".join(filter(None, (format_injected(airflow.answers), dead_letter_races(functions))))
        if metadata is not None:
            injected = f"tokens issued {metadata.token_fetches}, refused {metadata.refused_tokens}; {injected}".strip(
                "; "
            )
        confs = [run.conf for run in airflow.created()]
        counted = tally(name, events, result, confs, read_dead_letters(rig.gcs, tag), injected)
        return replace(counted, **cpu, **shape(rig, spec, 0, "fake"))


# ----------------------------------------------------------------------------------------------- real Airflow scenarios


def event_confs(events: Sequence[LoadEvent], limit: int = 1000) -> list[dict[str, Any]]:
    """The confs the function sends for (up to ``limit`` of) ``events``, built by dagtrigger's own code from the
    CloudEvents the burst delivers: the ceiling's POSTs then carry the same bodies as the burst's, so Airflow does
    the same work per POST on both sides (a tiny conf made its POSTs cheaper)."""
    confs = []
    for event in events[:limit]:
        if event.kind == "storage":
            out = storage_event("http://127.0.0.1", **event.build, event_id=event.event_id)
        else:
            out = pubsub_event("http://127.0.0.1", **event.build)
        attributes = {k[3:]: v for k, v in out.headers.items() if k.startswith("ce-")}
        confs.append(build_conf(from_cloud_event(attributes, json.loads(out.body))))
    return confs


def airflow_ceiling(
    airflow: AirflowServer,
    tag: str,
    count: int,
    concurrency: int,
    confs: Sequence[dict[str, Any]] = ({"ceiling": True},),
) -> tuple[float, Counter[int]]:
    """Airflow's own rate: ``count`` trigger POSTs straight to it (no function) from ``concurrency`` threads, one
    keep-alive connection each, on another DAG, after one untimed POST per thread (connections and first-call
    costs); POST n carries ``confs[n % len(confs)]``. Returns (POST/s, answers by status; 0 = no answer)."""
    body: dict[str, Any] = {}
    if airflow.major >= 3:
        body["logical_date"] = None
    path = f"{airflow.api_prefix}/dags/{CEILING_DAG}/dagRuns"
    headers = {"Content-Type": "application/json", **airflow.headers_for("admin")}
    numbers = iter(range(count + concurrency))
    lock = threading.Lock()
    statuses: Counter[int] = Counter()
    ready = threading.Barrier(concurrency + 1)

    def post(conn: http.client.HTTPConnection, n: int) -> int:
        payload = json.dumps({**body, "dag_run_id": f"ceiling__{tag}__{n}", "conf": confs[n % len(confs)]})
        try:
            conn.request("POST", path, body=payload, headers=headers)
            answer = conn.getresponse()
            answer.read()
            return answer.status
        except (OSError, http.client.HTTPException):
            conn.close()
            return 0

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", airflow.port, timeout=60)
        try:
            with lock:
                first = next(numbers)
            post(conn, first)  # warm-up, not counted
            with contextlib.suppress(threading.BrokenBarrierError):
                ready.wait(timeout=120)
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                status = post(conn, n)
                with lock:
                    statuses[status] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait(timeout=120)
    began = time.monotonic()
    for thread in threads:
        thread.join(timeout=600)
    return count / (time.monotonic() - began), statuses


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def task_start_times(airflow: AirflowServer) -> dict[str, float]:
    """run id → earliest start of its task instances (epoch s), for every run of DAG whose first task started."""
    starts: dict[str, float] = {}
    base = f"{airflow.api_prefix}/dags/{quote(DAG, safe='')}/dagRuns/~/taskInstances"
    offset = 0
    for _ in range(10_000):
        answer = airflow.request("GET", f"{base}?limit=100&offset={offset}")
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise RuntimeError(f"GET {base} answered {answer.status}: {answer.body!r:.300}")
        page = answer.body.get("task_instances", [])
        for ti in page:
            started = _parse_time(ti.get("start_date"))
            if started is not None:
                run_id = str(ti["dag_run_id"])
                starts[run_id] = min(started, starts.get(run_id, started))
        offset += len(page)
        if not page or offset >= int(answer.body.get("total_entries", 0)):
            break
    return starts


def to_running(airflow: AirflowServer, result: BurstResult, wait_s: float) -> tuple[float, float, int]:
    """Event first sent → its run's first task instance started, from Airflow's API: (p50 s, p99 s, runs measured).

    Waits up to ``wait_s`` for every run to have started a task (a run whose task never started is not measured,
    and the count says so)."""
    first_sent: dict[str, float] = {}
    for outcome in result.outcomes:
        if outcome.first_sent:
            first_sent[outcome.key] = min(outcome.first_sent, first_sent.get(outcome.key, outcome.first_sent))
    deadline = time.monotonic() + wait_s
    while True:
        runs = {str(r["dag_run_id"]): key_from_conf(r.get("conf") or {}) for r in airflow.list_runs(DAG)}
        starts = task_start_times(airflow)
        waits = [
            starts[run_id] - first_sent[key] for run_id, key in runs.items() if key in first_sent and run_id in starts
        ]
        wanted = sum(1 for key in runs.values() if key in first_sent)
        if len(waits) >= wanted or time.monotonic() > deadline:
            return percentile(waits, 50), percentile(waits, 99), len(waits)
        time.sleep(2.0)


REAL_SCENARIOS = ("load", "api-restart", "pg-restart", "race", "latency")


def run_real(
    rig: Rig,
    airflow: AirflowServer,
    name: str,
    spec: BurstSpec,
    policy: ClientPolicy = DEFAULT_POLICY,
    max_in_flight: int = 8,
    ceiling: int = 0,
    interval_s: float = 1.0,
    paused: bool = False,
) -> Tally:
    """One scenario against a real Airflow (``REAL_SCENARIOS``):

    - ``load``: the burst; ``ceiling`` > 0 first measures Airflow's own rate with that many direct POSTs, from as
      many callers as the instances can have in flight (min(client concurrency, instances × max_in_flight)), so
      both sides put the same concurrency on Airflow; the ceiling is measured again after the burst and ÷ceiling
      uses the mean of the two (with the scheduler running tasks the burst runs while it works on the ceiling's
      runs, the second ceiling while it works on the burst's; on a shared machine a slow spell weighs on both
      sides); ``paused`` pauses the DAGs of
      both first, so only the API path is compared; the ceiling's POSTs carry the burst's confs (``event_confs``);
    - ``api-restart``: the API server SIGKILLed once 30 % of the deliveries are acknowledged, started again;
    - ``pg-restart``: PostgreSQL itself crashed (``immediate``) at 30 %, down 2 s, started again;
    - ``race``: every event delivered twice at the same moment to two instances (the unique constraint decides);
    - ``latency``: events one at a time ``interval_s`` apart; event → first task running (needs the scheduler).
    """
    tag = _tag(name)
    if name == "race":
        spec = replace(spec, duplicates=1.0, concurrent_duplicates=1.0)
    events = make_events(tag, spec.events, pubsub=spec.pubsub, poison=spec.poison, seed=spec.seed)
    deliveries = plan(events, spec, rig.instances)
    env = rig.env(
        airflow.url,
        tag,
        AIRFLOW_MAX_IN_FLIGHT=str(max_in_flight),
        AIRFLOW_TIMEOUT_SECONDS="10",
        AIRFLOW_RETRY_BUDGET_SECONDS="10",
    )
    setup: list[str] = []
    ceiling_per_s = NAN
    callers = min(spec.concurrency, rig.instances * max_in_flight)  # what reaches Airflow at once on either side
    for dag in (DAG, CEILING_DAG) if paused else ():
        answer = airflow.request("PATCH", f"{airflow.api_prefix}/dags/{dag}", {"is_paused": True})
        if answer.status != 200:
            raise RuntimeError(f"could not pause {dag}: {answer.status} {answer.body}")
    if paused:
        setup.append("both DAGs paused")

    confs = event_confs([e for e in events if e.poison is None])

    def measure_ceiling(when: str) -> float:
        rate, answers = airflow_ceiling(airflow, f"{tag}{when}", ceiling, callers, confs)
        odd = ", ".join(f"{n}×{status or 'none'}" for status, n in sorted(answers.items()) if status != 200)
        setup.append(f"Airflow alone {when} {rate:.1f} POST/s at c={callers} ({odd or 'all 200'})")
        return rate

    if ceiling:
        ceiling_per_s = measure_ceiling("before")
    chaos: Chaos | None = None
    down: list[float] = []
    if name in ("api-restart", "pg-restart"):

        def chaos(progress: Progress) -> None:
            progress.wait_acked(0.3)
            began = time.monotonic()
            if name == "api-restart":
                airflow.kill_api_server()
                try:
                    progress.sleep(1.0)
                finally:
                    airflow.start()
            else:
                airflow.postgres.restart(immediate=True, down_s=2.0)
            down.append(time.monotonic() - began)

    with instances(env, rig) as functions:
        rig.log(
            f"{name}: {len(deliveries)} deliveries of {len(events)} events, {rig.instances} instances, "
            f"concurrency {spec.concurrency}, Airflow {describe(airflow)}"
        )
        urls = [f.url for f in functions]
        before = Meter.read(functions, airflow)
        if name == "latency":
            result = paced(urls, deliveries, interval_s, policy)
        else:
            result = burst(urls, deliveries, spec.concurrency, policy, chaos)
        cpu = before.usage(Meter.read(functions, airflow), len(deliveries))
        settle(lambda: airflow_run_count(airflow), limit_s=60.0 if chaos else 15.0)
        setup.append(dead_letter_races(functions) or "no dead-letter write lost a race")
    if ceiling:  # measured again and averaged: the burst sits between the two, so a slow spell of the shared machine
        # (or, with the scheduler running, its work on the other side's runs) weighs on both sides alike
        ceiling_per_s = (ceiling_per_s + measure_ceiling("after")) / 2
    if chaos is not None:
        what = "API server" if name == "api-restart" else "PostgreSQL"
        setup.append(f"{what} down {down[0]:.1f} s" if down else "no fault injected")
    threads = rig.threads or (os.cpu_count() or 1) * 4
    setup.append(f"THREADS={threads} MAX_IN_FLIGHT={max_in_flight}")
    counted = tally(name, events, result, airflow_run_confs(airflow), read_dead_letters(rig.gcs, tag), "; ".join(setup))
    running: dict[str, Any] = {}
    if airflow.scheduler and name in ("latency", "load"):
        # After a burst the scheduler needs minutes for thousands of runs: read what has started, do not wait.
        p50, p99, measured = to_running(airflow, result, TO_RUNNING_WAIT_S if name == "latency" else 0.0)
        running = {"to_running_p50_s": p50, "to_running_p99_s": p99, "to_running_measured": measured}
    extra = {"airflow_cpu_ms": NAN} if chaos else {}
    return replace(
        counted,
        **{**cpu, **extra},
        **shape(rig, spec, max_in_flight, describe(airflow)),
        airflow_ceiling_per_s=ceiling_per_s,
        **running,
    )


@contextlib.contextmanager
def rig(
    workdir: Path | None = None, threads: int | None = None, verbose: bool = False, n_instances: int = 1
) -> Iterator[Rig]:
    """A work directory and a storage emulator (its own process: single-threaded, it must not share our GIL)."""
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dagtrigger-load-")))
        gcs = stack.enter_context(storage_emulator(subprocess_mode=True))
        gcs.create_bucket(BUCKET)

        def log(text: str) -> None:
            if verbose:
                print(f"[load] {text}", file=sys.stderr, flush=True)

        yield Rig(root, gcs, threads, log, n_instances)
