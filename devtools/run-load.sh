#!/usr/bin/env bash
# Load and fault runs, from nothing: N function processes against a real Airflow (PostgreSQL with the scheduler by
# default, or SQLite) or the fake one for fault injection; bounded in time and count, 127.0.0.1 only.
#   bash devtools/run-load.sh [--airflow sqlite|postgres] [--major 2|3] [--instances N] [--events N]
#     [--concurrency N] [--duplicates F] [--max-in-flight N] [--scenario NAME[,NAME]] [--json FILE]
# Scenarios: load, api-restart, pg-restart, race, latency; faults (fake Airflow). --help lists every option.
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
bash devtools/ensure-postgres.sh
exec python -m loadtest.loadrun "$@"
