#!/usr/bin/env bash
# fmtrain under mpirun (pipeline 2, data 2, ZeRO 1), a random rank SIGKILLed at a random moment
# 20 times, resumed each time with --resume auto: the losses of every step equal those of an
# uninterrupted run bit for bit.
fmtrain=$1
source "$(dirname "$0")/e2e_common.sh"
steps=300
fmtrain_mpi 4 2 1 "$work/ref" --train_steps $steps --save_steps 4 --resume none > "$work/ref.log" 2>&1 ||
  { tail -30 "$work/ref.log"; fail "the uninterrupted run failed"; }

run="$work/run"
kills=0
for _ in $(seq 1 60); do
  fmtrain_mpi 4 2 1 "$run" --train_steps $steps --save_steps 4 --resume auto --max_checkpoints 2 \
    >> "$work/run.log" 2>&1 &
  job=$!
  sleep "$((RANDOM % 3)).$((RANDOM % 10))"
  ranks=
  for _ in $(seq 1 100); do  # the ranks may still be starting
    ranks=$(pgrep -f -- "--output_dir $run" | grep -vx "$job" || true)
    ranks=$(for p in $ranks; do [ "$(ps -o comm= -p "$p")" = fmtrain ] && echo "$p"; done)
    [ -n "$ranks" ] || ! kill -0 "$job" 2>/dev/null && break
    sleep 0.1
  done
  if [ -n "$ranks" ] && kill -0 "$job" 2>/dev/null; then
    victim=$(shuf -n 1 <<<"$ranks")
    kill -KILL "$victim" 2>/dev/null && kills=$((kills + 1))
  fi
  wait "$job" && break  # finished training
  [ "$kills" -ge 20 ] && break
done
[ "$kills" -ge 20 ] || echo "note: the run finished after $kills kills"
[ "$kills" -ge 5 ] || fail "only $kills kills landed: the runs are too short for this test"
# Finish the run without interruption.
fmtrain_mpi 4 2 1 "$run" --train_steps $steps --save_steps 4 --resume auto --max_checkpoints 2 \
  >> "$work/run.log" 2>&1 || { tail -30 "$work/run.log"; fail "the final resumed run failed"; }
grep -q "resuming from" "$work/run.log" || fail "no run resumed"
! grep -q "skipping checkpoint" "$work/run.log" || { grep "skipping checkpoint" "$work/run.log"; fail "a checkpoint was damaged"; }
"$py" "$here/metrics_compare.py" "$work/ref/metrics.jsonl" "$run/metrics.jsonl" --last $steps ||
  fail "losses after $kills kills differ from the uninterrupted run"
sleep 0.5
left=$(pgrep -f -- "--output_dir $run" || true)
[ -z "$left" ] || fail "processes left running: $left"
echo "ok: $kills SIGKILLs, resumed with --resume auto, losses bit-identical to the uninterrupted run"
