# shellcheck shell=bash
# Shared setup of the fmtrain checkpoint tests (sourced). Needs $fmtrain.
set -u
fail() {
  echo "FAIL: $*"
  exit 1
}
if ! "$fmtrain" --help 2>/dev/null | grep -q -- "--max_checkpoints"; then
  echo "SKIP: this fmtrain does not save checkpoints yet (no --max_checkpoints flag)"
  exit 77
fi
py=$(command -v python3) || fail "python3 is needed to compare metrics"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# One global batch of 16 sequences whatever the layout: micro-batch 2, gradient accumulation
# 16 / (2 * data-parallel size).
ds_config() {  # ds_config ZERO_STAGE FILE
  cat > "$2" <<JSON
{
  "train_batch_size": 16,
  "train_micro_batch_size_per_gpu": 2,
  "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}},
  "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 400, "warmup_min_lr": 0,
                "warmup_max_lr": 1e-3, "warmup_num_steps": 5, "warmup_type": "linear"}},
  "gradient_clipping": 1.0,
  "zero_optimization": {"stage": $1}
}
JSON
}
ds_config 0 "$work/zero0.json"
ds_config 1 "$work/zero1.json"
ds_config 2 "$work/zero2.json"
model="$FM_SOURCE_DIR/configs/models/tiny.json"
# fmtrain under mpirun: fmtrain_mpi NP PIPE ZERO OUTPUT_DIR [FLAGS...]
fmtrain_mpi() {
  local np=$1 pipe=$2 zero=$3 out=$4
  shift 4
  mpirun --oversubscribe -np "$np" "$fmtrain" --model_config "$model" --deepspeed_config "$work/zero$zero.json" \
    --pipe_parallel_size "$pipe" --max_seq_len 64 --output_dir "$out" "$@"
}
