#!/usr/bin/env bash
# fmlaunch on this machine only: the local launcher (a hostfile of two "nodes", 127.0.0.1 and
# localhost, run side by side), the torchrun-compatible agent form, devices, environment and
# secrets, per-rank logs, failures, restarts and signals.
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1

# World and arguments.
OUT=$(fresh_out world)
PORT=$(free_port)
ARGS=(--out "$OUT" "$MARK" "${WEIRD[@]}")
run local_world "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$PORT" "$PROBE" "${ARGS[@]}"
expect_rc local_world 0
check_world local_world "$OUT" 4 "0 1 0 1" "0 0 1 1" "${ARGS[@]}"
for r in 0 1 2 3; do expect_in local_world out "[rank $r] probe rank $r of 4"; done
grep -q "^master_port=$PORT$" "$OUT/rank_3.rec" || fail "local_world: MASTER_PORT not passed"
ok "local: 2 nodes x 2 ranks, ranks 0..3 once each, LOCAL_RANK/NODE_RANK right, odd arguments intact"

# No hostfile: one node; CUDA_VISIBLE_DEVICES is one device per rank, or the inherited list's entries.
OUT=$(fresh_out devices)
run devices "$FMLAUNCH" --num_gpus 3 --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc devices 0
check_world devices "$OUT" 3 "0 1 2" "0 0 0" --out "$OUT"
for r in 0 1 2; do grep -q "^cuda_visible_devices=$r$" "$OUT/rank_$r.rec" || fail "devices: rank $r has the wrong device"; done
OUT=$(fresh_out inherited)
CUDA_VISIBLE_DEVICES=5,7,9 run inherited "$FMLAUNCH" --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc inherited 0
check_world inherited "$OUT" 3 "0 1 2" "0 0 0" --out "$OUT"
for pair in 0:5 1:7 2:9; do
  grep -q "^cuda_visible_devices=${pair#*:}$" "$OUT/rank_${pair%:*}.rec" || fail "inherited: rank ${pair%:*} should see device ${pair#*:}"
done
OUT=$(fresh_out include_slot)
CUDA_VISIBLE_DEVICES=4,6 run include_slot "$FMLAUNCH" -i localhost:1 --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc include_slot 0
grep -q "^cuda_visible_devices=6$" "$OUT/rank_0.rec" || fail "include_slot: slot 1 of '4,6' should be device 6"
OUT=$(fresh_out node_view)
CUDA_VISIBLE_DEVICES=5,7,9 run node_view "$FMLAUNCH" --num_gpus 2 --cuda_visible_devices node --master_port "$(free_port)" \
  "$PROBE" --out "$OUT"
expect_rc node_view 0
for r in 0 1; do grep -q "^cuda_visible_devices=5,7$" "$OUT/rank_$r.rec" || fail "node_view: rank $r should see 5,7"; done
OUT=$(fresh_out inherit_view)
CUDA_VISIBLE_DEVICES=5,7,9 run inherit_view "$FMLAUNCH" --num_gpus 2 --cuda_visible_devices inherit \
  --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc inherit_view 0
for r in 0 1; do grep -q "^cuda_visible_devices=5,7,9$" "$OUT/rank_$r.rec" || fail "inherit_view: rank $r should see 5,7,9"; done
ok "local: CUDA_VISIBLE_DEVICES per rank (slot, or the inherited list's entry; --include slots honoured; node/inherit views)"

# Environment: exported prefixes, .fmenv, --env; secrets masked in what fmlaunch prints.
printf '%s\n' '# comment' 'export NCCL_DEBUG=INFO' "FROM_FILE='file value'" 'FOO=from-file' >"$WORK/.fmenv"
OUT=$(fresh_out env)
NCCL_SOCKET_IFNAME=lo run env "$FMLAUNCH" --num_gpus 2 --master_port "$(free_port)" --log_dir "$WORK/envlogs" \
  --env WANDB_API_KEY=s3cr3t-v4lue --env FOO='x y' \
  "$PROBE" --out "$OUT" --report-env WANDB_API_KEY --report-env NCCL_DEBUG --report-env FOO \
  --report-env FROM_FILE --report-env NCCL_SOCKET_IFNAME
expect_rc env 0
rec_env() { sed -n "s/^env_$1=//p" "$OUT/rank_1.rec"; }
[ "$(rec_env WANDB_API_KEY)" = "$(hexof s3cr3t-v4lue)" ] || fail "env: the rank did not get the secret's real value"
[ "$(rec_env NCCL_DEBUG)" = "$(hexof INFO)" ] || fail "env: .fmenv (export prefix) not applied"
[ "$(rec_env FROM_FILE)" = "$(hexof 'file value')" ] || fail "env: .fmenv quoted value not applied"
[ "$(rec_env FOO)" = "$(hexof 'x y')" ] || fail "env: --env must override .fmenv"
[ "$(rec_env NCCL_SOCKET_IFNAME)" = "$(hexof lo)" ] || fail "env: inherited NCCL_ variable missing"
expect_in env err "WANDB_API_KEY='***'"
expect_not_in env err "s3cr3t"
expect_not_in env out "s3cr3t"
if grep -rq s3cr3t "$WORK/envlogs"; then fail "env: the secret leaked into the logs"; fi
rm -f "$WORK/.fmenv"
ok "local: .fmenv, --env and inherited NCCL_* reach the ranks; the secret is shown as ***"

# Per-rank logs and prefixed console lines.
OUT=$(fresh_out logs)
run logs "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --log_dir "$WORK/logs" "$PROBE" --out "$OUT"
expect_rc logs 0
for r in 0 1 2 3; do
  grep -qx "probe rank $r: world of 4 is consistent" "$WORK/logs/rank_$r.log" || fail "logs: rank_$r.log lacks the rank's output"
  expect_in logs out "[rank $r] probe rank $r: world of 4 is consistent"
done
ok "local: --log_dir writes rank_<R>.log per rank; console lines carry [rank R]"

# Failures: a rank's exit code, a rank killed by SIGKILL (with children and an escaped orphan).
OUT=$(fresh_out exitcode)
run exitcode "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --grace_period 2 \
  "$PROBE" --out "$OUT" --fail-rank 2 --fail-code 7 --after 0.5 --hang "$MARK"
expect_rc exitcode 7
expect_in exitcode err "rank 2 (node 1, host localhost, local rank 0) exited with code 7"
expect_in exitcode err "probe rank 2: failing now"
expect_no_leftovers exitcode
ok "local: a rank exiting 7 stops the job with exit code 7, naming rank, host and its last lines"

FAULT_OUT=$(fresh_out fault)
fault local_fault 3 "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --grace_period 2 \
  "$PROBE" --out "$FAULT_OUT" --kill-rank 3 --after 1 --hang --spawn-child --spawn-orphan "$MARK"
[ "$RC" = 137 ] || fail "local_fault: exit code $RC, expected 137 (128+SIGKILL)"

FAULT_OUT=$(fresh_out stubborn)
fault local_stubborn 0 "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --grace_period 1 \
  "$PROBE" --out "$FAULT_OUT" --kill-rank 0 --after 0.5 --hang --ignore-term --spawn-child "$MARK"

# Restarts: the job runs again after a failure; a second failure ends it.
OUT=$(fresh_out restart)
run restart "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --grace_period 2 --max_restarts 1 \
  "$PROBE" --out "$OUT" --kill-rank 3 --after 0.5 --hang --first-run-only "$MARK"
expect_rc restart 0
expect_in restart err "restarting the job (1 of 1 restarts)"
for r in 0 1 2 3; do grep -q '^restart_count=1$' "$OUT/rank_$r.rec" || fail "restart: rank $r did not see FM_RESTART_COUNT=1"; done
expect_no_leftovers restart
OUT=$(fresh_out restart_exhausted)
run restart_exhausted "$FMLAUNCH" --num_gpus 2 --master_port "$(free_port)" --grace_period 2 --max_restarts 1 \
  "$PROBE" --out "$OUT" --fail-rank 1 --fail-code 9 --after 0.2
expect_rc restart_exhausted 9
expect_in restart_exhausted err "job failed (run 2 of 2)"
ok "local: --max_restarts 1 reruns the whole job (FM_RESTART_COUNT=1) and stops after the last try"

# SIGTERM / SIGINT to fmlaunch stop every rank.
for sig in TERM INT; do
  OUT=$(fresh_out "sig$sig")
  timeout -k 5 60 "$FMLAUNCH" -H "$HOSTFILE" --launcher local --master_port "$(free_port)" --grace_period 1 \
    "$PROBE" --out "$OUT" --hang --ignore-term "$MARK" >"$WORK/sig$sig.out" 2>"$WORK/sig$sig.err" &
  pid=$!
  for _ in $(seq 100); do [ "$(find "$OUT" -name '*.rec' | wc -l)" = 4 ] && break; sleep 0.1; done
  kill -"$sig" "$pid"
  wait "$pid"
  RC=$?
  want=$((128 + $(kill -l "$sig")))
  expect_rc "sig$sig" "$want"
  expect_in "sig$sig" err "received SIG$sig; stopping all ranks"
  expect_no_leftovers "sig$sig"
done
ok "local: SIGTERM/SIGINT to fmlaunch stop all ranks (SIGKILL after the grace period), exit 128+signal"

# The agent form, as torchrun would be used: two agents make one world of 4.
OUT=$(fresh_out agents)
PORT=$(free_port)
timeout -k 5 60 "$FMLAUNCH" --nnodes 2 --node_rank 0 --nproc_per_node 2 --master_addr 127.0.0.1 --master_port "$PORT" \
  "$PROBE" --out "$OUT" "${WEIRD[@]}" >"$WORK/agent0.out" 2>"$WORK/agent0.err" &
a0=$!
run agent1 "$FMLAUNCH" --nnodes=2 --node-rank=1 --nproc-per-node=2 --rdzv-backend=c10d --rdzv-endpoint="127.0.0.1:$PORT" \
  "$PROBE" --out "$OUT" "${WEIRD[@]}"
expect_rc agent1 0
wait "$a0" || fail "agent 0 failed: $(cat "$WORK/agent0.err")"
check_world agents "$OUT" 4 "0 1 0 1" "0 0 1 1" --out "$OUT" "${WEIRD[@]}"
ok "agent: --nnodes/--node_rank/--nproc_per_node (and dashed, = and --rdzv-endpoint spellings) build one world"

# The agent form inside a Slurm-like step finds its node rank from SLURM_NODEID.
OUT=$(fresh_out slurm_env)
SLURM_NODEID=0 SLURM_STEP_ID=0 run slurm_env "$FMLAUNCH" --nnodes 1 --nproc_per_node 2 "$PROBE" --out "$OUT"
expect_rc slurm_env 0
check_world slurm_env "$OUT" 2 "0 1" "0 0" --out "$OUT"
ok "agent: node rank from the Slurm step when --node_rank is not given"
