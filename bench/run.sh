#!/usr/bin/env bash
# The benchmark in one command, from a fresh machine: the function's venv (devtools/bootstrap.sh), then python -m bench.
# Arguments go to python -m bench (--quick, --events N, --skip-airflow, --results bench/RESULTS.md, …).
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
exec python -m bench "$@"
