"""Import time of the function, from ``python -X importtime`` (median of a few runs: one run is noisy).

Reported: ``import main`` in total, what the bare framework costs (``import functions_framework``), the heaviest
imports under ``main`` (our ``dagtrigger`` modules are opened up to show the third-party modules they pull in), and
what is imported after the port opens (google-auth, in the master's first-token thread; the per-event stages, in the
worker), which cold start pays for too.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dagtrigger.pipeline import STAGES

AFTER_THE_PORT = (
    "google.auth",
    "google.auth.transport.requests",
    "google.auth.compute_engine",
    *(f"dagtrigger.{stage}" for stage in STAGES),
)
# Imported only by the events that need them, never by ``import main`` nor a plain first event: what each would cost.
DEFERRED = {
    "jmespath": "routes with conf templates",
    "yaml": "a YAML ROUTES_FILE",
    "google.cloud.storage": "manifests, dead letters, batches",
}


@dataclass(frozen=True)
class Node:
    name: str
    depth: int
    cumulative_us: int
    parent: str | None


def parse(stderr: str) -> list[Node]:
    """Lines ``import time: self | cumulative | <indent>name``; children come before their parent."""
    rows: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative_text, raw_name = line.split("|", 2)
        if not cumulative_text.strip().isdigit():
            continue
        name = raw_name.rstrip()
        indent = len(name) - len(name.lstrip(" "))
        rows.append((name.strip(), (indent - 1) // 2, int(cumulative_text)))
    nodes: list[Node] = []
    for index, (name, depth, cumulative) in enumerate(rows):
        parent = next((r[0] for r in rows[index + 1 :] if r[1] < depth), None)
        nodes.append(Node(name, depth, cumulative, parent))
    return nodes


def _run(code: str, env: Mapping[str, str], cwd: Path) -> list[Node]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"python -X importtime -c {code!r} failed:\n{done.stderr[-3000:]}")
    return parse(done.stderr)


@dataclass(frozen=True)
class ImportReport:
    main_ms: float
    framework_ms: float
    lazy_ms: float
    offenders: list[tuple[str, float]]  # (module, cumulative ms), heaviest first
    deferred: list[tuple[str, float, bool]]  # (module, ms imported after main, whether main already imported it)


def _offenders(nodes: list[Node]) -> dict[str, float]:
    """Direct imports of main (with our own dagtrigger modules opened up one level) and the lazy ones, in ms."""
    found: dict[str, float] = {}
    after_main = False
    for node in nodes:
        if node.depth == 0 and node.name == "main":
            after_main = True
            continue
        if node.depth == 0 and after_main:
            found[f"{node.name} (after the port)"] = node.cumulative_us / 1000
        elif node.depth == 1 and node.parent == "main" and not node.name.startswith("dagtrigger"):
            found[node.name] = node.cumulative_us / 1000
        elif node.depth == 2 and (node.parent or "").startswith("dagtrigger"):
            found[f"{node.name} (via {node.parent})"] = node.cumulative_us / 1000
    return found


def measure(env: Mapping[str, str], cwd: Path, runs: int = 3, top: int = 6) -> ImportReport:
    lazy = ", ".join(AFTER_THE_PORT)
    mains, frameworks, lazies = [], [], []
    per_module: dict[str, list[float]] = {}
    for _ in range(runs):
        nodes = _run(f"import main; import {lazy}", env, cwd)
        mains.append(next(n.cumulative_us for n in nodes if n.depth == 0 and n.name == "main") / 1000)
        seen_main = False
        lazy_us = 0
        for node in nodes:
            if node.depth == 0 and node.name == "main":
                seen_main = True
            elif node.depth == 0 and seen_main:
                lazy_us += node.cumulative_us
        lazies.append(lazy_us / 1000)
        for name, ms in _offenders(nodes).items():
            per_module.setdefault(name, []).append(ms)
        bare = _run("import functions_framework", env, cwd)
        frameworks.append(next(n.cumulative_us for n in bare if n.name == "functions_framework") / 1000)
    ranked = sorted(((name, statistics.median(v)) for name, v in per_module.items()), key=lambda x: -x[1])
    return ImportReport(
        main_ms=statistics.median(mains),
        framework_ms=statistics.median(frameworks),
        lazy_ms=statistics.median(lazies),
        offenders=ranked[:top],
        deferred=[_deferred(module, env, cwd, runs) for module in DEFERRED],
    )


def _deferred(module: str, env: Mapping[str, str], cwd: Path, runs: int) -> tuple[str, float, bool]:
    """``module``'s import time after ``import main`` (median), and whether main had imported it already (then the
    time is ~0 and the module is not deferred at all)."""
    times, eager = [], False
    for _ in range(runs):
        nodes = _run(f"import main; import {module}", env, cwd)
        after = [n for n in nodes if n.depth == 0 and n.name == module]
        eager = eager or not after
        times.append(after[-1].cumulative_us / 1000 if after else 0.0)
    return module, statistics.median(times), eager
