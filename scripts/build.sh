#!/usr/bin/env bash
# Configures (once) and builds fmengine into ./build. Extra arguments go to `meson setup`
# the first time (e.g. -Dcuda=disabled).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ ! -f build/build.ninja ]; then
  meson setup build "$@" >/dev/null
fi
ninja -C build >/dev/null
