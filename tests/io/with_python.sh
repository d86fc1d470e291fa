#!/usr/bin/env bash
# Runs a reference-check script with the python of the test venv (FM_PYTHON). scripts/test.sh sets
# it up; without it the check cannot run, which is a failure, not a pass.
set -euo pipefail
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FM_PYTHON is unset: run the tests through scripts/test.sh, which prepares the reference venv" >&2
  exit 1
fi
exec "$FM_PYTHON" "$@"
