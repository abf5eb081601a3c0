#!/usr/bin/env bash
# The main job, locally, end to end, from nothing: real Airflow 3 on 127.0.0.1 with PostgreSQL and the scheduler,
# the function under functions-framework, a sample upload event (sent twice), the resulting DAG run run to `success`
# and the task's log line showing the conf it received. `--no-scheduler`: SQLite, no scheduler (faster; the run
# stays queued). `--keep`: leave Airflow and the function running until Ctrl-C, add a webhook function, and print
# their URLs and ready `dagtrigger send` lines. Extra arguments go to devtools/demo.py (--major 2, --object NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
if [[ " $* " != *" --no-scheduler "* ]]; then
  bash devtools/ensure-postgres.sh
fi
python -m devtools.demo "$@"
