#!/usr/bin/env bash
# fmlaunch under a real Slurm: munged + slurmctld + two slurmd (nodes fmnode1 and fmnode2, both
# this machine), started here and stopped by PID. Covers --launcher slurm (one srun, one agent per
# node) inside salloc, and both sbatch templates of scripts/sbatch/.
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
if [ "$(id -u)" != 0 ]; then
  echo "SKIP: the Slurm tests start munged/slurmd on this machine and need root"
  exit 77
fi

"$HERE/daemons.sh" start "$WORK/daemons" slurm >"$WORK/daemons.env" || fail "could not start Slurm (scripts/setup.sh --test installs it)"
CLEANUPS+=("'$HERE/daemons.sh' stop '$WORK/daemons'")
source "$WORK/daemons.env"
# The node names do not resolve; the rendezvous host is given explicitly.
SLURM_OPTS=(--launcher slurm --num_gpus 2 --master_addr 127.0.0.1)

OUT=$(fresh_out slurm_world)
ARGS=(--out "$OUT" --report-env SLURMD_NODENAME "$MARK" "${WEIRD[@]}")
run slurm_world salloc -N2 "$FMLAUNCH" "${SLURM_OPTS[@]}" --master_port "$(free_port)" "$PROBE" "${ARGS[@]}"
expect_rc slurm_world 0
check_world slurm_world "$OUT" 4 "0 1 0 1" "0 0 1 1" "${ARGS[@]}"
expect_in slurm_world err "slurm launcher, 2 node(s) (fmnode1, fmnode2), world size 4"
for pair in 0:fmnode1 1:fmnode1 2:fmnode2 3:fmnode2; do
  grep -q "^env_SLURMD_NODENAME=$(hexof "${pair#*:}")$" "$OUT/rank_${pair%:*}.rec" || fail "slurm_world: rank ${pair%:*} should run on ${pair#*:}"
done
expect_no_leftovers slurm_world
ok "slurm: one srun, ranks 0..3 once each, node ranks follow the allocation, odd arguments intact"

# A hostfile of Slurm node names picks the order (and checks the names belong to the job).
printf '%s\n' 'fmnode2 slots=1' 'fmnode1 slots=1' >"$WORK/slurm_hosts"
OUT=$(fresh_out slurm_hostfile)
run slurm_hostfile salloc -N2 "$FMLAUNCH" -H "$WORK/slurm_hosts" --launcher slurm --master_addr 127.0.0.1 \
  --master_port "$(free_port)" "$PROBE" --out "$OUT" --report-env SLURMD_NODENAME
expect_rc slurm_hostfile 0
check_world slurm_hostfile "$OUT" 2 "0 0" "0 1" --out "$OUT" --report-env SLURMD_NODENAME
grep -q "^env_SLURMD_NODENAME=$(hexof fmnode2)$" "$OUT/rank_0.rec" || fail "slurm_hostfile: rank 0 should run on fmnode2 (first line)"
printf '%s\n' 'fmnode1 slots=1' 'fmnode9 slots=1' >"$WORK/slurm_foreign"
run slurm_foreign salloc -N2 "$FMLAUNCH" -H "$WORK/slurm_foreign" --launcher slurm "$PROBE" --out "$OUT"
expect_rc slurm_foreign 2
expect_in slurm_foreign err "$WORK/slurm_foreign:2: host 'fmnode9' is not a node of Slurm job"
ok "slurm: a hostfile orders the nodes; a host outside the allocation is an input error"

FAULT_OUT=$(fresh_out slurm_fault)
fault slurm_fault 3 salloc -N2 "$FMLAUNCH" "${SLURM_OPTS[@]}" --master_port "$(free_port)" --grace_period 2 \
  "$PROBE" --out "$FAULT_OUT" --kill-rank 3 --after 1 --hang --spawn-child --spawn-orphan "$MARK"
[ "$RC" = 137 ] || fail "slurm_fault: exit code $RC, expected 137"
expect_in slurm_fault err "rank 3 (host fmnode2) was killed by signal 9 (SIGKILL)"

OUT=$(fresh_out slurm_restart)
run slurm_restart salloc -N2 "$FMLAUNCH" "${SLURM_OPTS[@]}" --master_port "$(free_port)" --grace_period 2 --max_restarts 1 \
  "$PROBE" --out "$OUT" --kill-rank 2 --after 0.5 --hang --first-run-only "$MARK"
expect_rc slurm_restart 0
for r in 0 1 2 3; do grep -q '^restart_count=1$' "$OUT/rank_$r.rec" || fail "slurm_restart: rank $r not restarted"; done
expect_no_leftovers slurm_restart
ok "slurm: --max_restarts 1 runs a second srun after rank 2 is killed, then finishes"

# The sbatch templates: submit, wait for the job, check its output and exit code.
submit() {  # submit NAME TEMPLATE ARGS...: sets RC to the job's exit code; output in $WORK/NAME.out
  local name=$1 template=$2 jid state
  shift 2
  jid=$(FMLAUNCH=$FMLAUNCH FM_PROCS_PER_NODE=2 FM_MASTER_ADDR=127.0.0.1 FM_MASTER_PORT=$(free_port) FM_GRACE_PERIOD=2 \
    sbatch --parsable -N2 -o "$WORK/$name.out" -e "$WORK/$name.err" "$SRC/scripts/sbatch/$template" "$@") ||
    fail "$name: sbatch failed"
  for _ in $(seq 600); do
    state=$(scontrol show job -o "$jid" | grep -o 'JobState=[A-Z_]*')
    case "$state" in
      *PENDING | *RUNNING | *CONFIGURING | *COMPLETING) sleep 0.1 ;;
      *) break ;;
    esac
  done
  RC=$(scontrol show job -o "$jid" | sed -n 's/.* ExitCode=\([0-9]*\):.*/\1/p')
  SIG=$(scontrol show job -o "$jid" | sed -n 's/.* ExitCode=[0-9]*:\([0-9]*\).*/\1/p')
  [ -n "$RC" ] || fail "$name: no exit code for job $jid ($state)"
  [ "$SIG" = 0 ] || fail "$name: the batch script died of signal $SIG"
}

for template in fmlaunch_srun.sbatch fmlaunch_per_node.sbatch; do
  name=${template%.sbatch}
  OUT=$(fresh_out "$name")
  ARGS=(--out "$OUT" "$MARK" "${WEIRD[@]}")
  submit "$name" "$template" "$PROBE" "${ARGS[@]}"
  expect_rc "$name" 0
  check_world "$name" "$OUT" 4 "0 1 0 1" "0 0 1 1" "${ARGS[@]}"
  for r in 0 1 2 3; do expect_in "$name" out "[rank $r] probe rank $r: world of 4 is consistent"; done
  expect_no_leftovers "$name"
  ok "sbatch $template: 2 nodes x 2 ranks, node ranks right, odd arguments intact"

  FAULT_OUT=$(fresh_out "${name}_fault")
  submit "${name}_fault" "$template" "$PROBE" --out "$FAULT_OUT" --kill-rank 1 --after 1 --hang --spawn-orphan "$MARK"
  expect_rc "${name}_fault" 137
  expect_in "${name}_fault" err "rank 1 (node 0, host fmnode1, local rank 1) was killed by signal 9 (SIGKILL)"
  expect_no_leftovers "${name}_fault"
  ok "sbatch $template: rank 1 killed -> job exit code 137, the other node stopped, nothing left running"
done
