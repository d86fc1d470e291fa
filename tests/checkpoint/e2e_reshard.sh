#!/usr/bin/env bash
# A checkpoint written by fmtrain as (pipeline 2, data 2, ZeRO 1) resumes as (1, 4, ZeRO 2), as
# (4, 1, ZeRO 0) and as one process: the losses of the following steps equal those of the run
# that went on under the original layout (fp32 on CPU, to 1e-5 relative: reductions are ordered
# differently), and --init_ckpt takes the checkpoint's weights.
fmtrain=$1
source "$(dirname "$0")/e2e_common.sh"
fmtrain_mpi 4 2 1 "$work/a" --train_steps 8 --save_steps 4 --resume none > "$work/a.log" 2>&1 ||
  { tail -30 "$work/a.log"; fail "the (2,2,ZeRO 1) run failed"; }
ck="$work/a/checkpoints/global_step4"
[ -f "$ck/manifest.json" ] || fail "no checkpoint at step 4"
for spec in "4 1 2" "4 4 0" "1 1 1"; do
  set -- $spec
  out="$work/b-$1-$2-$3"
  fmtrain_mpi "$1" "$2" "$3" "$out" --train_steps 8 --resume "$ck" > "$out.log" 2>&1 ||
    { tail -30 "$out.log"; fail "resume as (pipeline $2, data $(($1 / $2)), ZeRO $3) failed"; }
  "$py" "$here/metrics_compare.py" "$work/a/metrics.jsonl" "$out/metrics.jsonl" --first 5 --last 8 --rtol 1e-5 ||
    fail "losses after resharding to (pipeline $2, data $(($1 / $2)), ZeRO $3) differ"
  echo "ok: resumed as (pipeline $2, data $(($1 / $2)), ZeRO $3)"
done
# Weights only: the first loss of a run initialised from step 8 is far below a random start's.
fmtrain_mpi 1 1 0 "$work/init" --train_steps 1 --resume none --init_ckpt "$work/a" > "$work/init.log" 2>&1 ||
  { tail -30 "$work/init.log"; fail "--init_ckpt with an fmengine checkpoint failed"; }
"$py" - "$work/a/metrics.jsonl" "$work/init/metrics.jsonl" <<'PY' || fail "--init_ckpt did not load the weights"
import json, sys
first = lambda p: [json.loads(l) for l in open(p) if l.strip()][0]["loss"]
trained, init = first(sys.argv[1]), first(sys.argv[2])
print(f"random start {trained:.4f}, from the checkpoint {init:.4f}")
sys.exit(0 if init < trained - 0.1 else 1)
PY
echo "ok: --init_ckpt takes the weights of an fmengine checkpoint"
