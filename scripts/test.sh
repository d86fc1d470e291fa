#!/usr/bin/env bash
# The test command: installs what the tests need (apt, and a PyPI venv of reference peers),
# builds, and runs every test with meson. Extra arguments go to `meson test`
# (e.g. `scripts/test.sh --suite unit`, or a test name).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/setup.sh --test
FM_PYTHON=$(scripts/test_venv.sh)
export FM_PYTHON
scripts/build.sh
meson test -C build --num-processes "${FM_TEST_JOBS:-2}" --print-errorlogs "$@"
