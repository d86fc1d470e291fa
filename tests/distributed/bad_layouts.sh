#!/usr/bin/env bash
# Layouts that cannot work are refused before any work, on every rank, with exit 2 and one message:
# a pipeline size that does not divide the world, more stages than layers, a batch triad that does
# not divide by the data-parallel size. Nothing is written to the output directory.
set -euo pipefail
fmtrain="$FM_BUILD_DIR/runtime/fmtrain"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
python3 - "$FM_SOURCE_DIR/configs/models/tiny.json" "$tmp/one_layer.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["num_hidden_layers"] = 1; json.dump(c, open(sys.argv[2], "w"))
PY
cat > "$tmp/triad.json" <<'JSON'
{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 3,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-3}}}
JSON
fails=0
expect() {  # name np expected-message args...
  local name=$1 np=$2 msg=$3; shift 3
  set +e
  mpirun --oversubscribe -np "$np" "$fmtrain" --output_dir "$tmp/out_$name" "$@" > "$tmp/$name.log" 2>&1
  local rc=$?
  set -e
  local shown
  shown=$(grep -c "^fmtrain: error:" "$tmp/$name.log" || true)
  if [ "$rc" != 2 ] || ! grep -qF -- "$msg" "$tmp/$name.log" || [ "$shown" != 1 ] || [ -e "$tmp/out_$name" ]; then
    echo "FAILED $name: exit $rc, error lines $shown (want 2 and 1), output dir $( [ -e "$tmp/out_$name" ] && echo created || echo absent)"
    cat "$tmp/$name.log"; fails=$((fails + 1))
  else
    echo "ok $name: exit 2: $(grep -m1 '^fmtrain: error:' "$tmp/$name.log")"
  fi
}
expect not_dividing 3 "2 pipeline stages do not divide the world of 3 ranks" --pipe_parallel_size 2
expect too_many_stages 4 "4 pipeline stages for a model of 3 layers" --pipe_parallel_size 4 --model_config "$tmp/one_layer.json"
expect triad 2 "train_batch_size 16 is not divisible by train_micro_batch_size_per_gpu (3) x data-parallel size (2) = 6" \
  --deepspeed_config "$tmp/triad.json"
[ "$fails" = 0 ]
