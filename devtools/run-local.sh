#!/usr/bin/env bash
# The main job, locally, end to end: real Airflow 3 on 127.0.0.1, the function under functions-framework,
# a sample upload event (sent twice), and the resulting DAG run printed. Extra arguments go to devtools/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
source devtools/bootstrap.sh
python -m devtools.demo "$@"
