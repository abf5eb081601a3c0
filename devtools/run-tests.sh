#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, formatting, types, then every test tier (fast, integration, load, bench),
# every one run even when another failed, with a summary at the end
# (integration starts real Airflow 2.11 and 3.3 on 127.0.0.1; their venvs are built once and cached
# under ${DAGTRIGGER_CACHE:-~/.cache/dagtrigger}). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
bash devtools/ensure-postgres.sh   # PostgreSQL-backed Airflow with a scheduler (integration and load tiers)
echo "==> building the Airflow venvs if missing (first time about a minute each)" >&2
python -m devtools.localairflow ensure --major 2
python -m devtools.localairflow ensure --major 3
# ruff, ruff format, mypy, then every tier (fast, integration, load, bench), each run even if one before it failed;
# a summary per step at the end, exit status 1 if any failed. Extra arguments: one pytest run narrowed by them.
if [[ $# -eq 0 ]]; then
  export DAGTRIGGER_FUZZ_SCALE=1  # every fuzz case (a bare pytest runs a fifth of them)
fi
exec python -m devtools.tiers "$@"
