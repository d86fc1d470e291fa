#!/usr/bin/env bash
# Runs deepspeed_parity.py with the reference venv's python (FM_PYTHON, exported by scripts/test.sh).
#   deepspeed_parity.sh DS_CONFIG_DUMP
set -euo pipefail
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FM_PYTHON is not set: run the tests through scripts/test.sh (it prepares the reference venv)" >&2
  exit 1
fi
exec "$FM_PYTHON" "$(dirname "$0")/deepspeed_parity.py" "$1"
