#!/usr/bin/env bash
# Pipeline benchmarks: (1) executor efficiency over synthetic fixed-cost stages, p = 4, m = 8,
# 1F1B and GPipe; (2) the real model's tokens/s at (pipeline 2 x data 2, ZeRO 1) against one
# process, same global batch. Prints JSON lines; results go to docs/PERFORMANCE.md.
#   bench/pipeline/run.sh [BUILD_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
for sched in 1f1b gpipe; do
  mpirun --oversubscribe -np 4 "$build/bench/pipeline/pipeline_efficiency" --micro_batches 8 --schedule "$sched"
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ds.json" <<'JSON'
{"train_batch_size": 32, "train_micro_batch_size_per_gpu": 4,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.1}},
 "zero_optimization": {"stage": 1}}
JSON
model="$here/bench/model/llama-20m.json"
common=(--model_config "$model" --deepspeed_config "$tmp/ds.json" --max_seq_len 256 --train_steps 8 --log_steps 1)
tps() {  # median tokens/s of steps 3.. from metrics.jsonl
  python3 - "$1/metrics.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]
print(round(statistics.median(r["tokens_per_s"] for r in rows)))
PY
}
"$build/runtime/fmtrain" "${common[@]}" --output_dir "$tmp/single" > "$tmp/single.log" 2>&1
mpirun --oversubscribe -np 4 "$build/runtime/fmtrain" "${common[@]}" --pipe_parallel_size 2 --output_dir "$tmp/p2d2" \
  > "$tmp/p2d2.log" 2>&1
echo "{\"model\": \"bench/model/llama-20m.json\", \"seq\": 256, \"global_batch\": 32, \"cores\": $(nproc), \
\"tokens_per_s_1x1\": $(tps "$tmp/single"), \"tokens_per_s_p2xd2_zero1\": $(tps "$tmp/p2d2")}"
