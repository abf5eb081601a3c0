"""Orchestrates one bench run and prints one table; see bench/README.md for what each row means.

Everything is measured in the same run on this machine, and every figure that has a target is reported as a ratio
to a baseline run side by side, so the verdicts do not depend on how fast the machine is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench import imports, load
from bench.endpoint import make_certificate, trust_bundle
from bench.procs import Endpoint, Memory, cpu_seconds, memory, process_cpu_seconds
from bench.table import EMPTY, Row, number, ratio, render, verdict
from devtools.fakes import FakeMetadataServer
from devtools.localfunction import REPO, FunctionProcess, clean_env

DAG_ID = "dagtrigger_example"
OURS = "ours"
RAW = "raw POST"
BARE = "bare"
FLOOR = "floor (a)"
SAMPLE = "sample (b)"
FUNCTIONS = (FLOOR, SAMPLE, OURS)
BASELINES = REPO / "bench" / "baselines.py"
# Diagnostic: ours with a static token, so the cold-start rows show what google-auth costs on the first event.
OURS_BEARER = "ours, AIRFLOW_AUTH=bearer"
# Diagnostic: ours with the API version configured (no probe; the warm-up's one request confirms it instead).
OURS_V2 = "ours, AIRFLOW_API_VERSION=v2"
# Diagnostic: ours with the worker fetching its first token itself (without it, gunicorn's master does: first_token).
OURS_WORKER_TOKEN = "ours, DAGTRIGGER_FIRST_TOKEN=0"
EXTRA_ENV = {
    OURS_BEARER: {"AIRFLOW_AUTH": "bearer", "AIRFLOW_TOKEN": "static-bench-token"},
    OURS_V2: {"AIRFLOW_API_VERSION": "v2"},
    OURS_WORKER_TOKEN: {"DAGTRIGGER_FIRST_TOKEN": "0"},
}
TARGETS = {
    BARE: (BASELINES, "bare_event"),
    FLOOR: (BASELINES, "floor_event"),
    SAMPLE: (BASELINES, "sample_event"),
    OURS: (REPO / "main.py", "trigger_event"),
    OURS_BEARER: (REPO / "main.py", "trigger_event"),
    OURS_V2: (REPO / "main.py", "trigger_event"),
    OURS_WORKER_TOKEN: (REPO / "main.py", "trigger_event"),
}
P50_MAX_VS_FLOOR = 1.2
THROUGHPUT_MIN_VS_SAMPLE = 3.0
PORT_OPEN_MAX_VS_FLOOR = 1.1  # cold start: the port opens no later than 1.1× the floor's
FIRST_2XX_MAX_VS_SAMPLE = 1.0  # cold start: the first 2xx no later than Google's sample's, in the same run
RSS_MAX_MB = 90.0


_STARTED = time.monotonic()


def say(text: str) -> None:
    print(f"[bench {time.monotonic() - _STARTED:5.1f}s] {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sizes:
    events: int  # per concurrency level, per variant, against the HTTPS endpoint
    airflow_events: int  # the same against real Airflow (tens of ms per run: SQLite, one worker)
    cold_starts: int  # measured rounds (after one discarded warm-up round)
    import_runs: int
    concurrencies: tuple[int, ...] = (1, 8, 32)
    # The harness' Airflow runs on SQLite: concurrent triggers wait on its write lock and fail with 500 after ~5 s,
    # so above 1 the figures would measure SQLite, not the function. Raise it with --airflow-concurrency.
    airflow_concurrencies: tuple[int, ...] = (1,)
    rounds: int = 6  # each concurrency level's events are sent in this many rotating rounds
    deadline_s: float = 120.0  # per load run

    def warmup(self, events: int, concurrency: int) -> int:
        """Enough for every client connection and every pooled connection in the function to be opened."""
        return max(2 * concurrency, min(128, events // 8))


class TokenMetadataServer(FakeMetadataServer):
    """The fake GCE metadata server; against real Airflow it hands out an Airflow JWT as the "access token"."""

    def __init__(self, fixed_token: str | None = None) -> None:
        super().__init__()
        self.fixed_token = fixed_token

    def token(self, n: int) -> str:
        return self.fixed_token or super().token(n)


@dataclass(frozen=True)
class Upstream:
    """Where the functions send the trigger call."""

    label: str
    url: str
    ca_bundle: Path | None
    token: str  # what floor (a) and the raw POST send as their bearer token
    metadata_token: str | None = None  # what the metadata server hands out (real Airflow: its JWT)

    @property
    def dag_runs_url(self) -> str:
        return f"{self.url}/api/v2/dags/{DAG_ID}/dagRuns"

    def env(self, metadata: FakeMetadataServer) -> dict[str, str]:
        env = {"AIRFLOW_URI": self.url, "DAG_ID": DAG_ID, "AIRFLOW_AUTH": "google", **metadata.env()}
        env["BENCH_STATIC_TOKEN"] = self.token
        env["K_SERVICE"] = "dagtrigger-bench"  # as on Cloud Run: ours warms up while it starts (dagtrigger/warmup.py)
        if self.ca_bundle is not None:
            env["REQUESTS_CA_BUNDLE"] = str(self.ca_bundle)  # requests' trust store: certifi's + our certificate
        return env


@dataclass
class UpstreamResult:
    loads: dict[tuple[str, int], load.LoadResult] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)
    cpu_ms_per_event: dict[str, float] = field(default_factory=dict)  # function processes, measured events only
    upstream_cpu_s: dict[str, float] = field(default_factory=dict)  # the upstream server, during measured events
    token_fetches: dict[str, int] = field(default_factory=dict)  # per function process, over its whole life
    events_sent: dict[str, int] = field(default_factory=dict)


def _check(result: load.LoadResult, what: str, served: FunctionProcess | None) -> None:
    if result.errors or result.unsent:
        detail = f"statuses {result.statuses}, {result.errors} errors, {result.unsent} unsent"
        tail = f"\n{served.tail()}" if served is not None else ""
        say(f"WARNING: {what}: {detail}{tail}")


def measure_upstream(
    upstream: Upstream,
    sizes: Sizes,
    events: int,
    concurrencies: tuple[int, ...],
    workdir: Path,
    upstream_pid: int | None = None,
) -> UpstreamResult:
    """Every variant at each concurrency against one upstream.

    All function processes run side by side (each with its own metadata server, so token fetches are counted per
    process) and are warmed up first: first-call costs belong to cold start. The events of each concurrency level
    are sent in rounds that rotate through the variants, so a background load on the machine hits all alike.
    """
    out = UpstreamResult()
    tag = "https" if upstream.ca_bundle else "af3"
    rounds = max(1, min(sizes.rounds, events // 8))
    with contextlib.ExitStack() as stack:
        served: dict[str, FunctionProcess] = {}
        metadata: dict[str, TokenMetadataServer] = {}
        for variant in FUNCTIONS:
            metadata[variant] = TokenMetadataServer(upstream.metadata_token)
            stack.enter_context(metadata[variant])
            source, target = TARGETS[variant]
            served[variant] = stack.enter_context(
                FunctionProcess(target, upstream.env(metadata[variant]), workdir, source=source)
            )

        def make_client(variant: str) -> load.Client:
            if variant == RAW:
                return load.RawPostClient(upstream.dag_runs_url, upstream.token, upstream.ca_bundle)
            return load.EventClient(served[variant].url)

        top = max(concurrencies)
        clients = {v: [make_client(v) for _ in range(top)] for v in (RAW, *FUNCTIONS)}

        def close_clients() -> None:
            for pool in clients.values():
                for client in pool:
                    client.close()

        stack.callback(close_clients)
        warm = sizes.warmup(events, top)
        say(f"{upstream.label}: warm-up ({warm} events per variant at c={top})")
        for variant in (RAW, *FUNCTIONS):
            name = variant.split()[0]
            result = load.run_load(clients[variant], load.storage_events(f"{tag}-{name}-warm", warm), top, 60)
            _check(result, f"{variant} warm-up", served.get(variant))
            out.events_sent[variant] = result.done
        cpu_before = {v: cpu_seconds(served[v]) for v in FUNCTIONS}
        order = [RAW, *FUNCTIONS]
        for c in concurrencies:
            say(f"{upstream.label}: c={c}: {events} events per variant in {rounds} rotating rounds")
            for round_no in range(rounds):
                count = events // rounds + (1 if round_no < events % rounds else 0)
                for variant in order[round_no % len(order) :] + order[: round_no % len(order)]:
                    name = variant.split()[0]
                    items = load.storage_events(f"{tag}-{name}-c{c}-r{round_no}", count)
                    server_cpu = process_cpu_seconds(upstream_pid) if upstream_pid else 0.0
                    result = load.run_load(clients[variant], items, c, sizes.deadline_s)
                    if upstream_pid:
                        used = process_cpu_seconds(upstream_pid) - server_cpu
                        out.upstream_cpu_s[variant] = out.upstream_cpu_s.get(variant, 0.0) + used
                    _check(result, f"{variant} c={c}", served.get(variant))
                    out.loads[(variant, c)] = (
                        out.loads[(variant, c)].merge(result) if (variant, c) in out.loads else result
                    )
                    out.events_sent[variant] += result.done
        for variant in FUNCTIONS:
            measured = sum(out.loads[(variant, c)].done for c in concurrencies)
            out.cpu_ms_per_event[variant] = (
                (cpu_seconds(served[variant]) - cpu_before[variant]) * 1000 / max(1, measured)
            )
            out.memory[variant] = memory(served[variant])
            out.token_fetches[variant] = metadata[variant].token_fetches
    return out


@dataclass
class ColdStart:
    port_open_s: dict[str, list[float]] = field(default_factory=dict)
    first_ok_s: dict[str, list[float]] = field(default_factory=dict)
    memory: dict[str, Memory] = field(default_factory=dict)


def cold_starts(upstream: Upstream, sizes: Sizes, metadata: FakeMetadataServer, workdir: Path) -> ColdStart:
    """Process start → first 2xx for one event, rounds interleaved across variants; round 0 is discarded."""
    out = ColdStart()
    for round_no in range(sizes.cold_starts + 1):
        for variant in (BARE, *FUNCTIONS, OURS_BEARER, OURS_V2, OURS_WORKER_TOKEN):
            source, target = TARGETS[variant]
            item = load.storage_event(
                "bench-cold", f"cold/{round_no}/{target}.csv", time.time_ns() // 1000, f"cold-{target}-{time.time_ns()}"
            )
            served = FunctionProcess(
                target, {**upstream.env(metadata), **EXTRA_ENV.get(variant, {})}, workdir, source=source
            )
            served.start(wait=False)
            try:
                port_s = served.wait_port()
                client = load.EventClient(served.url)
                status = client.send(item)  # waits in the listen backlog until the worker is up
                first_ok = time.monotonic() - served.started_at
                client.close()
                if not 200 <= status < 300:
                    raise RuntimeError(f"cold start of {target}: first event answered {status}:\n{served.tail()}")
                if round_no > 0:
                    out.port_open_s.setdefault(variant, []).append(port_s)
                    out.first_ok_s.setdefault(variant, []).append(first_ok)
                    out.memory[variant] = memory(served)
            finally:
                served.stop()
    return out


def machine(load_before: tuple[float, float, float] | None = None) -> dict[str, str]:
    """What the figures depend on; the load averages show whether something else was running (ratios still hold)."""
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f"{mem_kb / 1024 / 1024:.1f} GiB"
    versions = ", ".join(
        f"{p} {importlib.metadata.version(p)}"
        for p in ("functions-framework", "gunicorn", "flask", "requests", "urllib3", "google-auth", "cryptography")
    )
    cpus = os.cpu_count() or 1
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": model,
        "memory": mem,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "OS": f"{platform.system()} {platform.release()}",
        "packages": versions,
        "gunicorn threads": f"{os.environ.get('THREADS', cpus * 4)} (functions-framework default: 4 × CPUs)",
        "load average (1/5/15 min) at start": " ".join(f"{x:.2f}" for x in load_before) if load_before else "n/a",
        "load average (1/5/15 min) at end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


_LOAD_MEASURES: tuple[tuple[str, Callable[[load.LoadResult], float], int], ...] = (
    ("p50 latency ms", lambda r: r.percentile_ms(50), 2),
    ("p99 latency ms", lambda r: r.percentile_ms(99), 2),
    ("throughput events/s", lambda r: r.throughput, 0),
)


def _load_rows(label: str, result: UpstreamResult, concurrencies: tuple[int, ...], check_targets: bool) -> list[Row]:
    rows: list[Row] = []
    for c in concurrencies:
        runs = {v: result.loads.get((v, c)) for v in (RAW, *FUNCTIONS)}
        for measure, get, digits in _LOAD_MEASURES:
            values = {v: (get(r) if r is not None else None) for v, r in runs.items()}
            row = Row(f"{label}: {measure}", str(c), {v: number(x, digits) for v, x in values.items()})
            vs_floor, vs_sample = ratio(values[OURS], values[FLOOR]), ratio(values[OURS], values[SAMPLE])
            row.ratios = {"ours÷(a)": number(vs_floor, 2), "ours÷(b)": number(vs_sample, 2)}
            if check_targets and measure.startswith("p50"):
                row.target, row.result = f"≤{P50_MAX_VS_FLOOR}× (a)", verdict(vs_floor, P50_MAX_VS_FLOOR, True)
            if check_targets and measure.startswith("throughput") and c == max(concurrencies):
                row.target = f"≥{THROUGHPUT_MIN_VS_SAMPLE:g}× (b)"
                row.result = verdict(vs_sample, THROUGHPUT_MIN_VS_SAMPLE, False)
            rows.append(row)
    failed = {
        v: sum(result.loads[(v, c)].errors + result.loads[(v, c)].unsent for c in concurrencies)
        for v in (RAW, *FUNCTIONS)
    }
    rows.append(Row(f"{label}: non-2xx or failed events", "all", {v: str(n) for v, n in failed.items()}))
    cpu = {v: result.cpu_ms_per_event.get(v) for v in FUNCTIONS}
    row = Row(f"{label}: function CPU ms per event", "all", {v: number(x, 2) for v, x in cpu.items()})
    row.ratios = {
        "ours÷(a)": number(ratio(cpu[OURS], cpu[FLOOR]), 2),
        "ours÷(b)": number(ratio(cpu[OURS], cpu[SAMPLE]), 2),
    }
    rows.append(row)
    if result.upstream_cpu_s:
        measured = {v: sum(result.loads[(v, c)].done for c in concurrencies) for v in (RAW, *FUNCTIONS)}
        server = {v: result.upstream_cpu_s[v] * 1000 / max(1, measured[v]) for v in (RAW, *FUNCTIONS)}
        row = Row(f"{label}: endpoint CPU ms per event", "all", {v: number(x, 2) for v, x in server.items()})
        row.ratios = {
            "ours÷(a)": number(ratio(server[OURS], server[FLOOR]), 2),
            "ours÷(b)": number(ratio(server[OURS], server[SAMPLE]), 2),
        }
        rows.append(row)
    # Over each process's whole life (warm-up included): the token lifetime is 1 h, so 1 fetch per process is ideal.
    per_1k = {v: result.token_fetches[v] * 1000 / max(1, result.events_sent[v]) for v in (SAMPLE, OURS)}
    rows.append(Row(f"{label}: token fetches per 1,000 events", "all", {v: number(x, 2) for v, x in per_1k.items()}))
    totals = {v: str(result.token_fetches[v]) for v in (SAMPLE, OURS)}
    rows.append(Row(f"{label}: token fetches per process", "all", totals, target="1 per token lifetime"))
    return rows


def build_rows(
    https: UpstreamResult, airflow: UpstreamResult | None, cold: ColdStart, imp: imports.ImportReport, sizes: Sizes
) -> list[Row]:
    rows = _load_rows("HTTPS endpoint", https, sizes.concurrencies, check_targets=True)
    # Cold start.
    # The honest anchors: the port against the floor (no google-auth there, and none before the port opens in ours),
    # the first answer against Google's sample, which imports google-auth too.
    for measure, data, anchor, limit in (
        ("cold start: port open s", cold.port_open_s, FLOOR, PORT_OPEN_MAX_VS_FLOOR),
        ("cold start: first 2xx s", cold.first_ok_s, SAMPLE, FIRST_2XX_MAX_VS_SAMPLE),
    ):
        values = {v: _median(data.get(v)) for v in (BARE, *FUNCTIONS)}
        vs_bare = ratio(values[OURS], values[BARE])
        row = Row(measure, "1", {v: number(x, 3) for v, x in values.items()}, {"ours÷bare": number(vs_bare, 2)})
        row.ratios["ours÷(a)"] = number(ratio(values[OURS], values[FLOOR]), 2)
        row.ratios["ours÷(b)"] = number(ratio(values[OURS], values[SAMPLE]), 2)
        label = "(a)" if anchor == FLOOR else "(b)"
        row.target = f"≤{limit:g}× {label}"
        row.result = verdict(ratio(values[OURS], values[anchor]), limit, True)
        rows.append(row)
    # The same with a static token: the difference to the row above is google-auth's share of ours.
    bearer, bare = _median(cold.first_ok_s.get(OURS_BEARER)), _median(cold.first_ok_s.get(BARE))
    row = Row("cold start: first 2xx s, ours with AIRFLOW_AUTH=bearer", "1", {BARE: number(bare, 3)})
    row.values[OURS] = number(bearer, 3)
    row.ratios = {"ours÷bare": number(ratio(bearer, bare), 2)}
    row.ratios["ours÷(a)"] = number(ratio(bearer, _median(cold.first_ok_s.get(FLOOR))), 2)
    rows.append(row)
    for variant, label in (
        (OURS_V2, "cold start: first 2xx s, ours with AIRFLOW_API_VERSION=v2"),
        (OURS_WORKER_TOKEN, "cold start: first 2xx s, ours with DAGTRIGGER_FIRST_TOKEN=0"),
    ):
        value = _median(cold.first_ok_s.get(variant))
        row = Row(label, "1", {BARE: number(bare, 3)})
        row.values[OURS] = number(value, 3)
        row.ratios = {"ours÷bare": number(ratio(value, bare), 2)}
        row.ratios["ours÷(b)"] = number(ratio(value, _median(cold.first_ok_s.get(SAMPLE))), 2)
        rows.append(row)
    # Memory: the load processes after c=32 (bare: after its first event).
    mem = {**{v: m for v, m in https.memory.items()}, BARE: cold.memory.get(BARE)}
    top_c = str(max(sizes.concurrencies))
    for measure, attr, checked in (
        ("peak RSS worker MB (VmHWM)", "worker_hwm_mb", True),
        ("peak RSS master MB (VmHWM)", "master_hwm_mb", True),
        ("PSS master+worker MB (now)", "pss_total_mb", False),
    ):
        values = {v: (getattr(m, attr) if m is not None else None) for v, m in mem.items()}
        row = Row(measure, top_c, {v: number(x, 1) for v, x in values.items()})
        row.ratios = {"ours÷(a)": number(ratio(values.get(OURS), values.get(FLOOR)), 2)}
        row.ratios["ours÷bare"] = number(ratio(values.get(OURS), values.get(BARE)), 2)
        if checked:
            row.target, row.result = f"≤{RSS_MAX_MB:g} MB", verdict(values.get(OURS), RSS_MAX_MB, True)
        rows.append(row)
    # Import time.
    row = Row("import time ms: main (bare: functions_framework)", EMPTY, {BARE: number(imp.framework_ms, 1)})
    row.values[OURS] = number(imp.main_ms, 1)
    row.ratios["ours÷bare"] = number(ratio(imp.main_ms, imp.framework_ms), 2)
    rows.append(row)
    rows.append(
        Row("import time ms: after the port opens (google.auth…, event stages)", EMPTY, {OURS: number(imp.lazy_ms, 1)})
    )
    for rank, (module, ms) in enumerate(imp.offenders, 1):
        rows.append(Row(f"import time ms: #{rank} {module}", EMPTY, {OURS: number(ms, 1)}))
    for module, ms, eager in imp.deferred:
        row = Row(
            f"import time ms: deferred {module} (only for {imports.DEFERRED[module]})", EMPTY, {OURS: number(ms, 1)}
        )
        row.target, row.result = "not imported by main", "MISS" if eager else "PASS"
        rows.append(row)
    if airflow is None:
        rows.append(Row("Airflow 3: skipped (--skip-airflow)", EMPTY))
    else:
        rows += _load_rows("Airflow 3", airflow, sizes.airflow_concurrencies, check_targets=False)
    return rows


@contextlib.contextmanager
def _workdir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dagtrigger-bench-"))
    try:
        yield path
    finally:
        if keep:
            say(f"work directory kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(sizes: Sizes, skip_airflow: bool, keep: bool) -> tuple[list[Row], float]:
    began = time.monotonic()
    with _workdir(keep) as workdir, TokenMetadataServer() as metadata:
        cert, key = make_certificate(workdir)
        bundle = trust_bundle(cert, workdir)
        ours_env = clean_env(Upstream("", "https://127.0.0.1:9", bundle, "").env(metadata), workdir)
        ours_env["DAGTRIGGER_WARMUP"] = "0"  # import times alone: the warm-up thread would import in between
        say(f"import times ({sizes.import_runs} runs of python -X importtime)")
        imp = imports.measure(ours_env, REPO, runs=sizes.import_runs)
        with Endpoint(cert, key, workdir) as endpoint:
            https = Upstream("HTTPS endpoint", endpoint.url, bundle, "static-bench-token")
            say(f"HTTPS Airflow-like endpoint at {endpoint.url}")
            assert endpoint.proc is not None
            result = measure_upstream(https, sizes, sizes.events, sizes.concurrencies, workdir, endpoint.proc.pid)
            say(f"cold starts ({sizes.cold_starts} rounds + 1 discarded)")
            cold = cold_starts(https, sizes, metadata, workdir)
        airflow_result = None
        if not skip_airflow:
            from devtools.localairflow import AirflowServer

            say("starting a real Airflow 3 API server (password auth; the metadata server hands out its JWT)")
            with AirflowServer(3, workdir / "airflow", auth="password") as airflow:
                jwt = airflow.token_for("op", "op")
                real = Upstream("Airflow 3", airflow.url, None, jwt, metadata_token=jwt)
                airflow_result = measure_upstream(
                    real, sizes, sizes.airflow_events, sizes.airflow_concurrencies, workdir
                )
    return build_rows(result, airflow_result, cold, imp, sizes), time.monotonic() - began


def results_markdown(
    table: str, command: str, elapsed_s: float, load_before: tuple[float, float, float] | None = None
) -> str:
    info = "\n".join(f"- **{k}**: {v}" for k, v in machine(load_before).items())
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"# Bench results\n\nMeasured {when} in {elapsed_s:.0f} s with:\n\n```bash\n{command}\n```\n\n"
        f"## Machine\n\n{info}\n\n## Table\n\n{table}\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, help="events per variant and concurrency, HTTPS endpoint (400)")
    parser.add_argument("--airflow-events", type=int, help="the same against real Airflow 3, at c=1 (96)")
    parser.add_argument(
        "--airflow-concurrency",
        type=lambda text: tuple(int(c) for c in text.split(",")),
        default=(1,),
        help="comma-separated concurrency levels against real Airflow (1: its SQLite serialises writes)",
    )
    parser.add_argument("--cold-starts", type=int, help="measured cold-start rounds per variant (3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a check that everything runs")
    parser.add_argument("--skip-airflow", action="store_true", help="no real Airflow part (saves ~40 s)")
    parser.add_argument("--results", type=Path, help="also write the table and the machine to this markdown file")
    parser.add_argument("--keep-workdir", action="store_true", help="keep logs, certificate and Airflow home")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    quick = args.quick
    sizes = Sizes(
        events=args.events or (40 if quick else 400),
        airflow_events=args.airflow_events or (16 if quick else 96),
        cold_starts=args.cold_starts if args.cold_starts is not None else (1 if quick else 3),
        import_runs=1 if quick else 3,
        airflow_concurrencies=args.airflow_concurrency,
    )
    rows, elapsed = run(sizes, args.skip_airflow, args.keep_workdir)
    table = render(rows)
    print(table, flush=True)
    command = "bash bench/run.sh " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = results_markdown(table, command.strip(), elapsed, load_before)
    out = args.results or REPO / "bench" / "out" / "last-run.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    say(f"done in {elapsed:.0f} s; table and machine written to {out}")
    return 0
