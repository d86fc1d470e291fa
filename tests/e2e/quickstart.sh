#!/usr/bin/env bash
# The README's quickstart command trains the embedded tiny model on the embedded corpus (through
# fmlaunch: 4 local ranks, pipeline 2 x data 2, ZeRO 1), and the loss falls by at least half
# (first logged step vs last). Timings are reported, not asserted.
set -euo pipefail
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
start=$(date +%s.%N)
"$FM_SOURCE_DIR/scripts/quickstart.sh" --output_dir "$out/run" > "$out/stdout" 2>&1 || {
  echo "quickstart failed:"; tail -30 "$out/stdout"; exit 1; }
end=$(date +%s.%N)
grep -E "(layout:|step +1/|done:)" "$out/stdout" || true
python3 - "$out/run/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
first, last = rows[0]["loss"], rows[-1]["loss"]
print(f"first loss {first:.4f}, last loss {last:.4f}, ratio {first / last:.2f}")
if not (last <= first / 2):
    sys.exit(f"the loss did not fall by half: {first} -> {last}")
PY
echo "quickstart wall time: $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }') s"
