#!/usr/bin/env bash
# Configures (once) and builds fmengine into ./build (or $FM_BUILD_DIR). Extra arguments go to
# `meson setup` the first time (e.g. -Dcuda=disabled).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
build=${FM_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$@" >/dev/null
fi
ninja -C "$build" >/dev/null
