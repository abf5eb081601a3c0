#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, formatting, types, then unit and integration tests
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
echo "==> building the Airflow venvs if missing (first time about a minute each)" >&2
python -m devtools.localairflow ensure --major 2
python -m devtools.localairflow ensure --major 3
echo "==> pytest" >&2
python -m pytest "$@"
