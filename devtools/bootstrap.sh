#!/usr/bin/env bash
# Creates (or reuses) the function's venv in .venv with requirements-dev.txt and the package itself (pip install -e .).
# It also installs the `dagtrigger` operator command (pyproject's [project.scripts]) into .venv/bin. Sourced by
# run-local.sh, run-tests.sh and run-load.sh. Reinstalls only when the requirement files or pyproject.toml change.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
python_bin="${PYTHON:-$(command -v python3.11 || command -v python3)}"
stamp="$venv/.requirements.sha256"
want="$(cat "$repo/requirements.txt" "$repo/requirements-dev.txt" "$repo/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "==> setting up the function's venv in .venv (first time ~30 s)" >&2
  "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  # The package itself, editable (pip install -e .): tests and tools import dagtrigger without sys.path edits.
  if ! out="$("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$repo" 2>&1)"; then
    echo "$out" >&2; echo "error: pip install -e . into .venv failed" >&2; exit 1
  fi
  [[ -x "$venv/bin/dagtrigger" ]] || { echo "error: pip install -e . did not install the dagtrigger command" >&2; exit 1; }
  "$venv/bin/python" -c "import functions_framework, google.auth, requests, cloudevents, hypothesis" \
    || { echo "error: installing requirements-dev.txt into .venv failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
