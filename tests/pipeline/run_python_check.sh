#!/usr/bin/env bash
# Runs a reference-check script with the Python of the test venv: run_python_check.sh SCRIPT ARGS...
# FM_PYTHON comes from scripts/test.sh; without it the check cannot run, which is a failure.
set -euo pipefail
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FM_PYTHON is not set: run the tests through scripts/test.sh (it prepares the reference venv)" >&2
  exit 1
fi
exec "$FM_PYTHON" "$@"
