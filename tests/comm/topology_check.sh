# Our rank layout against DeepSpeed's own topology code (reference venv from scripts/test.sh).
set -eu
probe=$1
script=$2
if [ -z "${FM_PYTHON:-}" ]; then
  echo "FAIL: FM_PYTHON is not set: run the tests through scripts/test.sh (it prepares the reference venv)"
  exit 1
fi
"$FM_PYTHON" "$script" "$probe"
