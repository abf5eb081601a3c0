#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, formatting, types, then every test tier (fast, integration, load, bench)
# (integration starts real Airflow 2.11 and 3.3 on 127.0.0.1; their venvs are built once and cached
# under ${DAGTRIGGER_CACHE:-~/.cache/dagtrigger}). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
echo "==> ruff" >&2
ruff check .
ruff format --check .
echo "==> mypy" >&2
mypy
bash devtools/ensure-postgres.sh   # PostgreSQL-backed Airflow with a scheduler (integration and load tiers)
echo "==> building the Airflow venvs if missing (first time about a minute each)" >&2
python -m devtools.localairflow ensure --major 2
python -m devtools.localairflow ensure --major 3
# Every tier, each named (tests/conftest.py gives the markers by directory; a bare `pytest` is only the fast one).
# The expressions do not overlap, so no test runs twice and each tier always has tests (pytest never exits with 5).
# With extra arguments (a path, -k, -x …) one run covers all tiers, so a narrowing never leaves a tier empty.
ALL="integration or load or bench or not (integration or load or bench)"
if [[ $# -gt 0 ]]; then
  echo "==> pytest: every tier, narrowed by: $*" >&2
  exec python -m pytest -m "$ALL" "$@"
fi
export DAGTRIGGER_FUZZ_SCALE=1  # every fuzz case (a bare pytest runs a fifth of them)
for tier in "fast:not (integration or load or bench)" "integration:integration and not (load or bench)" \
  "load:load" "bench:bench and not load"; do
  echo "==> pytest: ${tier%%:*} tier" >&2
  python -m pytest -m "${tier#*:}"
done
