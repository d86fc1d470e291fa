#!/usr/bin/env bash
# Runs a Python reference check with the test venv's python: parity.sh SCRIPT.py ARGS...
set -euo pipefail
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FM_PYTHON is not set: run the tests through scripts/test.sh (it prepares the reference venv)" >&2
  exit 1
fi
exec "$FM_PYTHON" "$@"
