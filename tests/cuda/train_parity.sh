#!/usr/bin/env bash
# fmtrain on the GPU: 50 steps of the tiny model with --device cuda follow the CPU fp32 loss curve
# within 2% (the same config, data and seed). Without a usable GPU the run must fail at once with
# a message naming the CUDA problem; that is checked, then the test reports SKIP (exit 77), since
# the training comparison itself could not run.
set -euo pipefail
fmtrain=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--train_steps 50 --max_seq_len 128 --resume none)
set +e
"$fmtrain" "${args[@]}" --device cuda --output_dir "$tmp/gpu" > "$tmp/gpu.log" 2>&1
rc=$?
set -e
if [ "$rc" != 0 ]; then
  if grep -qE "no usable CUDA device|no CUDA device is visible" "$tmp/gpu.log"; then
    [ "$rc" = 1 ] || { echo "expected exit 1 without a GPU, got $rc"; cat "$tmp/gpu.log"; exit 1; }
    [ ! -e "$tmp/gpu/metrics.jsonl" ] || { echo "training started without a GPU"; exit 1; }
    echo "SKIP: no GPU ($(grep -m1 -oE 'no (usable )?CUDA device.*' "$tmp/gpu.log"))"
    exit 77
  fi
  echo "fmtrain --device cuda failed:"; tail -30 "$tmp/gpu.log"; exit 1
fi
"$fmtrain" "${args[@]}" --device cpu --output_dir "$tmp/cpu" > "$tmp/cpu.log" 2>&1 || { tail -30 "$tmp/cpu.log"; exit 1; }
python3 - "$tmp/cpu/metrics.jsonl" "$tmp/gpu/metrics.jsonl" <<'PY'
import json, sys
cpu = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
gpu = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"loss"' in l]
assert len(cpu) == len(gpu) == 50, (len(cpu), len(gpu))
worst = max(abs(g - c) / abs(c) for c, g in zip(cpu, gpu))
print(f"50 steps: max relative difference of the GPU loss from the CPU fp32 loss {worst:.2e}")
sys.exit(0 if worst <= 0.02 else 1)
PY
