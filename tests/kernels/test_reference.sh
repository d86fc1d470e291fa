#!/usr/bin/env bash
# Runs test_reference.py with the reference venv's python (FM_PYTHON, set by scripts/test.sh).
set -euo pipefail
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FAIL: FM_PYTHON is not set; run the tests through scripts/test.sh, which prepares the reference venv" >&2
  exit 1
fi
exec "$FM_PYTHON" "$(dirname "$0")/test_reference.py" "$1"
