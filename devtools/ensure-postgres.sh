#!/usr/bin/env bash
# Makes sure PostgreSQL's server binaries (initdb, pg_ctl, postgres) are installed, for the PostgreSQL-backed
# Airflow of devtools/localpostgres.py. Installs Debian's `postgresql` package when missing and we are root
# (CI and this project's machines); otherwise says what to run. Starts no server: each test session starts its own
# cluster on a free loopback port. Sourced or run by run-tests.sh, run-local.sh, run-load.sh.
set -euo pipefail
have_server() {
  [[ -n "${PG_BINDIR:-}" && -x "${PG_BINDIR}/initdb" ]] && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && return 0
  command -v initdb >/dev/null
}
if have_server; then
  exit 0
fi
if [[ "$(id -u)" != "0" ]]; then
  echo "error: PostgreSQL's server binaries are not installed; run: sudo apt-get install -y postgresql" >&2
  echo "  (it also starts a 'main' cluster on port 5432 that this project does not use: each run starts its own;" >&2
  echo "  sudo pg_dropcluster --stop <version> main removes it), or set PG_BINDIR to a directory holding initdb" >&2
  exit 1
fi
echo "==> installing PostgreSQL (Debian's postgresql package; no cluster is created or started)" >&2
began=$SECONDS
# The package would create and start a 'main' cluster on port 5432; ours are made per test session instead.
mkdir -p /etc/postgresql-common
grep -qs "^create_main_cluster" /etc/postgresql-common/createcluster.conf \
  || echo "create_main_cluster = false" >> /etc/postgresql-common/createcluster.conf
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends postgresql >&2
have_server || { echo "error: postgresql installed but initdb not found" >&2; exit 1; }
echo "==> PostgreSQL installed in $((SECONDS - began)) s" >&2
