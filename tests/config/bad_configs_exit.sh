#!/usr/bin/env bash
# fmtrain refuses every malformed config in tests/config/bad/ before any work: exit code 2, and
# stderr names the offending key (the case's "// where:" line; "@" stands for the file's path).
# Cases that need a data-parallel size other than 1 ("// dp: N") are skipped: a single fmtrain
# process has dp 1 (the unit test covers them).
#   bad_configs_exit.sh FMTRAIN
set -uo pipefail
fmtrain=${1:-${FM_BUILD_DIR:-build}/runtime/fmtrain}
if [ ! -x "$fmtrain" ]; then
  echo "no fmtrain at $fmtrain" >&2
  exit 1
fi
fmtrain=$(realpath "$fmtrain")  # the runs below start in a scratch directory
cases=${FM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/config/bad
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0 ran=0 skipped=0
for case in "$cases"/*.json; do
  dp=$(sed -n 's|^// dp: *||p' "$case" | head -1)
  if [ -n "$dp" ] && [ "$dp" != 1 ]; then
    skipped=$((skipped + 1))
    continue
  fi
  where=$(sed -n 's|^// where: *||p' "$case" | head -1)
  where=${where//@/$case}
  if [ -z "$where" ]; then
    echo "FAIL $case: no '// where:' line"
    failed=$((failed + 1))
    continue
  fi
  (cd "$work" && "$fmtrain" --deepspeed_config "$case" --dry_run >"$work/out" 2>"$work/err")
  rc=$?
  ran=$((ran + 1))
  if [ "$rc" != 2 ]; then
    echo "FAIL $case: exit code $rc, expected 2"
    sed 's/^/    /' "$work/err" | head -5
    failed=$((failed + 1))
  elif ! grep -qF -- "$where" "$work/err"; then
    echo "FAIL $case: stderr does not name '$where'"
    sed 's/^/    /' "$work/err" | head -5
    failed=$((failed + 1))
  fi
done
echo "bad configs: $ran run through fmtrain, $failed failed, $skipped skipped (need dp > 1)"
[ "$ran" -gt 0 ] && [ "$failed" = 0 ]
