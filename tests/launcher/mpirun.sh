#!/usr/bin/env bash
# fmlaunch --launcher mpirun with Open MPI: one mpirun for all ranks, a hostfile made from the
# selection, variables passed with -x, output tagged per rank. Open MPI treats 127.0.0.1 and
# localhost as one machine, so the ranks see one node (local ranks 0..3) and set no NODE_RANK.
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1

OUT=$(fresh_out mpirun_world)
ARGS=(--out "$OUT" --report-env WANDB_API_KEY --report-env FM_TEST_X "$MARK" "${WEIRD[@]}")
mkdir -p "$WORK/tmp"
TMPDIR=$WORK/tmp FM_TEST_X=exported run mpirun_world "$FMLAUNCH" -H "$HOSTFILE" --launcher mpirun --launcher_args --oversubscribe \
  --master_port "$(free_port)" --env WANDB_API_KEY=s3cr3t --log_dir "$WORK/mlogs" "$PROBE" "${ARGS[@]}"
expect_rc mpirun_world 0
check_world mpirun_world "$OUT" 4 "0 1 2 3" "- - - -" "${ARGS[@]}"
grep -q "^env_WANDB_API_KEY=$(hexof s3cr3t)$" "$OUT/rank_2.rec" || fail "mpirun_world: --env did not reach the ranks"
grep -q "^env_FM_TEST_X=$(hexof exported)$" "$OUT/rank_2.rec" || fail "mpirun_world: FM_ variable not exported with -x"
expect_not_in mpirun_world err s3cr3t
for r in 0 1 2 3; do
  expect_in mpirun_world out "[rank $r] probe rank $r: world of 4 is consistent"
  grep -qx "probe rank $r: world of 4 is consistent" "$WORK/mlogs/rank_$r.log" || fail "mpirun_world: no rank_$r.log"
done
[ -z "$(ls -A "$WORK/tmp")" ] || fail "mpirun_world: the generated hostfile was not removed: $(ls "$WORK/tmp")"
expect_no_leftovers mpirun_world
ok "mpirun: ranks 0..3 once each, -x exports, odd arguments intact, [rank R] lines and rank_<R>.log"

FAULT_OUT=$(fresh_out mpirun_fault)
run mpirun_fault "$FMLAUNCH" -H "$HOSTFILE" --launcher mpirun --launcher_args --oversubscribe \
  --master_port "$(free_port)" --grace_period 2 "$PROBE" --out "$FAULT_OUT" --kill-rank 2 --after 1 --hang "$MARK"
[ "$RC" != 0 ] || fail "mpirun_fault: exit 0 although rank 2 was killed"
expect_in mpirun_fault err "mpirun exited with code"
expect_in mpirun_fault err "process rank 2"
expect_no_leftovers mpirun_fault
ok "mpirun: a killed rank ends the job non-zero with nothing left running"
