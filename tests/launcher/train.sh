#!/usr/bin/env bash
# The real job through fmlaunch: the tiny model at pipeline 2 x data 2 (ZeRO 1) trained in every
# launcher mode gives the per-step losses of the same run under plain mpirun; a rank SIGKILLed
# mid-training ends the job within 10 s naming the rank, leaving nothing running; with
# --max_restarts 1 the job resumes from its latest checkpoint and its losses equal an
# uninterrupted run's. Daemons (sshd for ssh/pdsh, munged + slurmctld + two slurmd) are started
# here and stopped by PID.
# usage: train.sh FMLAUNCH FMTRAIN
source "$(dirname "$0")/lib.sh"
FMTRAIN=$PROBE
cd "$WORK" || exit 1

cat >"$WORK/ds.json" <<'JSON'
{"train_batch_size": 16, "train_micro_batch_size_per_gpu": 2, "gradient_clipping": 1.0,
 "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.1}},
 "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 1e-4, "warmup_max_lr": 1e-3, "warmup_num_steps": 3}},
 "zero_optimization": {"stage": 1}}
JSON
STEPS=12
train_args() {  # train_args NAME [STEPS]: fmtrain's arguments; the output dir carries the test's MARK
  echo --deepspeed_config "$WORK/ds.json" --pipe_parallel_size 2 --train_steps "${2:-$STEPS}" --save_steps 2 \
    --max_seq_len 32 --output_dir "$WORK/$MARK-$1"
}
losses_equal() {  # losses_equal A B TOL: per-step losses (last record of each step) agree
  python3 - "$WORK/$MARK-$1/metrics.jsonl" "$WORK/$MARK-$2/metrics.jsonl" "$3" <<'PY'
import json, sys
def load(p):
    d = {}
    for l in open(p):
        r = json.loads(l)
        if "loss" in r:
            d[r["step"]] = r["loss"]
    return d
a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
worst = max(abs(a[k] - b[k]) / abs(b[k]) for k in a)
print(f"{len(a)} steps, max relative difference {worst:.2e}")
sys.exit(0 if worst <= tol else 1)
PY
}
wait_steps() {  # wait_steps NAME N: until the run has logged N steps
  local f="$WORK/$MARK-$1/metrics.jsonl"
  for _ in $(seq 600); do
    [ -f "$f" ] && [ "$(wc -l <"$f")" -ge "$2" ] && return 0
    sleep 0.1
  done
  fail "$1: the run did not reach step $2"
}
rank_pid() { sed -n 's/.*(pid \([0-9]*\)).*/\1/p' "$WORK/$MARK-$1/logs/rank_$2.log" | head -1; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# shellcheck disable=SC2046
run ref mpirun --oversubscribe -np 4 "$FMTRAIN" $(train_args ref)
expect_rc ref 0
ok "reference: pipeline 2 x data 2 under mpirun, $STEPS steps"

"$HERE/daemons.sh" start "$WORK/daemons" ssh slurm >"$WORK/daemons.env" || fail "could not start sshd/Slurm"
CLEANUPS+=("'$HERE/daemons.sh' stop '$WORK/daemons'")
source "$WORK/daemons.env"

# mode_cmd MODE: the launcher invocation of a mode (before PROGRAM).
mode_cmd() {
  case $1 in
    local) echo "$FMLAUNCH" --num_gpus 4 --master_port "$(free_port)" ;;
    mpirun) echo "$FMLAUNCH" -H "$HOSTFILE" --launcher mpirun --launcher_args --oversubscribe ;;
    ssh) echo "$FMLAUNCH" -H "$HOSTFILE" --launcher ssh --master_port "$(free_port)" ;;
    pdsh) echo "$FMLAUNCH" -H "$HOSTFILE" --launcher pdsh --master_port "$(free_port)" ;;
    slurm) echo salloc -N2 "$FMLAUNCH" --launcher slurm --num_gpus 2 --master_addr 127.0.0.1 --master_port "$(free_port)" ;;
  esac
}
launch() {  # launch MODE NAME [STEPS] [LAUNCHER OPTIONS...]: runs the training job (in the foreground)
  local mode=$1 name=$2 steps=$3
  shift 3
  local -a cmd extra=()
  read -r -a cmd <<<"$(mode_cmd "$mode")"
  [ "$mode" = ssh ] && extra=(--launcher_args "-F $FM_TEST_SSH_CONFIG")
  # shellcheck disable=SC2046
  "${cmd[@]}" "${extra[@]}" --grace_period 2 --log_dir "$WORK/$MARK-$name-launch" "$@" "$FMTRAIN" $(train_args "$name" "$steps")
}

run_fn() {  # run_fn NAME FUNCTION ARGS...: like run, for a shell function (meson's timeout guards hangs)
  local name=$1
  shift
  "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  RC=$?
}

for mode in local mpirun ssh pdsh slurm; do
  run_fn "train_$mode" launch "$mode" "train_$mode" "$STEPS"
  expect_rc "train_$mode" 0
  losses_equal "train_$mode" ref 1e-6 >"$WORK/cmp.txt" || fail "$mode: losses differ from mpirun: $(cat "$WORK/cmp.txt")"
  for r in 0 1 2 3; do
    [ -s "$WORK/$MARK-train_$mode/logs/rank_$r.log" ] || fail "$mode: no fmtrain log of rank $r"
    [ "$mode" = mpirun ] || [ -s "$WORK/$MARK-train_$mode-launch/rank_$r.log" ] || fail "$mode: no fmlaunch log of rank $r"
  done
  expect_no_leftovers "train_$mode"
  ok "$mode: trains pipeline 2 x data 2 to the end; losses equal the mpirun run ($(cat "$WORK/cmp.txt")); per-rank logs"
done

# A rank of the real job SIGKILLed mid-training.
for mode in local ssh pdsh slurm; do
  name=fault_$mode
  launch "$mode" "$name" 100000 >"$WORK/$name.out" 2>"$WORK/$name.err" &
  job=$!
  wait_steps "$name" 3
  victim=$(rank_pid "$name" 2)
  [ -n "$victim" ] || fail "$name: no pid of rank 2"
  t0=$(now)
  kill -KILL "$victim"
  for _ in $(seq 150); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$job" 2>/dev/null && { kill -KILL "$job"; fail "$name: the launcher was still running 15 s after rank 2 was killed"; }
  wait "$job"
  RC=$?
  took=$(elapsed "$t0" "$(now)")
  [ "$RC" != 0 ] || fail "$name: exit 0 after rank 2 was killed"
  awk -v t="$took" 'BEGIN { exit !(t < 10) }' || fail "$name: took ${took}s (limit 10 s)"
  expect_in "$name" err "rank 2"
  expect_no_leftovers "$name"
  ok "$mode: rank 2 SIGKILLed -> exit $RC after ${took}s, '$(grep -m1 'rank 2' "$WORK/$name.err" | cut -c1-110)'; nothing left"
done

# --max_restarts 1: the killed job restarts, resumes from the latest checkpoint, and its losses
# equal the uninterrupted run of the same mode.
for mode in local ssh pdsh slurm; do
  name=restart_$mode
  launch "$mode" "$name" "$STEPS" --max_restarts 1 >"$WORK/$name.out" 2>"$WORK/$name.err" &
  job=$!
  wait_steps "$name" 5
  kill -KILL "$(rank_pid "$name" 2)"
  wait "$job"
  RC=$?
  expect_rc "$name" 0
  expect_in "$name" err "restarting the job (1 of 1 restarts)"
  grep -q "resumed from" "$WORK/$MARK-$name/logs/rank_0.log" || fail "$name: the restarted job did not resume from a checkpoint"
  losses_equal "$name" "train_$mode" 0 >"$WORK/cmp.txt" || fail "$name: losses differ from the uninterrupted run: $(cat "$WORK/cmp.txt")"
  expect_no_leftovers "$name"
  ok "$mode: --max_restarts 1 after a SIGKILL resumes ($(grep -m1 -o 'resumed from .*' "$WORK/$MARK-$name/logs/rank_0.log" | sed "s|$WORK/||")) and matches the uninterrupted run bit for bit"
done

# The sbatch templates run the real job to the end with per-rank logs.
for template in fmlaunch_srun.sbatch fmlaunch_per_node.sbatch; do
  name=${template%.sbatch}
  # shellcheck disable=SC2046
  jid=$(FMLAUNCH=$FMLAUNCH FM_PROCS_PER_NODE=2 FM_MASTER_ADDR=127.0.0.1 FM_MASTER_PORT=$(free_port) FM_GRACE_PERIOD=2 \
    FM_LAUNCH_ARGS="--log_dir $WORK/$MARK-$name-launch" \
    sbatch --parsable -N2 -o "$WORK/$name.out" -e "$WORK/$name.err" "$SRC/scripts/sbatch/$template" \
    "$FMTRAIN" $(train_args "$name")) || fail "$name: sbatch failed"
  for _ in $(seq 1200); do
    squeue -h -j "$jid" 2>/dev/null | grep -q . || break
    sleep 0.1
  done
  code=$(scontrol show job -o "$jid" | sed -n 's/.* ExitCode=\([0-9]*:[0-9]*\).*/\1/p')
  [ "$code" = "0:0" ] || fail "$name: job exit code $code
$(show "$name")"
  losses_equal "$name" ref 1e-6 >"$WORK/cmp.txt" || fail "$name: losses differ: $(cat "$WORK/cmp.txt")"
  for r in 0 1 2 3; do
    [ -s "$WORK/$MARK-$name/logs/rank_$r.log" ] || fail "$name: no fmtrain log of rank $r"
    [ -s "$WORK/$MARK-$name-launch/rank_$r.log" ] || fail "$name: no fmlaunch log of rank $r"
  done
  ok "sbatch $template: trained to step $STEPS ($(cat "$WORK/cmp.txt") vs mpirun); per-rank logs in place"
done
