#!/usr/bin/env bash
# fmlaunch over real ssh and pdsh: a key-only sshd on 127.0.0.1 (started here, stopped by PID),
# a hostfile naming 127.0.0.1 and localhost with 2 slots each.
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1

"$HERE/daemons.sh" start "$WORK/daemons" ssh >"$WORK/daemons.env" || fail "could not start sshd (scripts/setup.sh --test installs it)"
CLEANUPS+=("'$HERE/daemons.sh' stop '$WORK/daemons'")
source "$WORK/daemons.env"
SSH_ARGS=(--launcher_args "-F $FM_TEST_SSH_CONFIG")

for mode in ssh pdsh; do
  extra=()
  [ "$mode" = ssh ] && extra=("${SSH_ARGS[@]}")

  OUT=$(fresh_out "${mode}_world")
  ARGS=(--out "$OUT" "$MARK" "${WEIRD[@]}")
  run "${mode}_world" "$FMLAUNCH" -H "$HOSTFILE" --launcher "$mode" "${extra[@]}" --master_port "$(free_port)" \
    --log_dir "$WORK/${mode}_logs" "$PROBE" "${ARGS[@]}"
  expect_rc "${mode}_world" 0
  check_world "${mode}_world" "$OUT" 4 "0 1 0 1" "0 0 1 1" "${ARGS[@]}"
  expect_in "${mode}_world" err "$mode launcher, 2 node(s) (127.0.0.1, localhost), world size 4"
  for r in 0 1 2 3; do
    expect_in "${mode}_world" out "[rank $r] probe rank $r: world of 4 is consistent"
    grep -qx "probe rank $r: world of 4 is consistent" "$WORK/${mode}_logs/rank_$r.log" || fail "${mode}_world: no rank_$r.log"
  done
  expect_not_in "${mode}_world" out "#fmlaunch#"
  expect_no_leftovers "${mode}_world"
  ok "$mode: ranks 0..3 once each over $mode, LOCAL_RANK/NODE_RANK per host, odd arguments intact, logs per rank"

  FAULT_OUT=$(fresh_out "${mode}_fault")
  fault "${mode}_fault" 3 "$FMLAUNCH" -H "$HOSTFILE" --launcher "$mode" "${extra[@]}" --master_port "$(free_port)" \
    --grace_period 2 "$PROBE" --out "$FAULT_OUT" --kill-rank 3 --after 1 --hang --spawn-child --spawn-orphan "$MARK"
  [ "$RC" = 137 ] || fail "${mode}_fault: exit code $RC, expected 137"
  expect_in "${mode}_fault" err "rank 3 (host localhost) was killed by signal 9 (SIGKILL)"

  OUT=$(fresh_out "${mode}_restart")
  run "${mode}_restart" "$FMLAUNCH" -H "$HOSTFILE" --launcher "$mode" "${extra[@]}" --master_port "$(free_port)" \
    --grace_period 2 --max_restarts 1 "$PROBE" --out "$OUT" --kill-rank 1 --after 0.5 --hang --first-run-only "$MARK"
  expect_rc "${mode}_restart" 0
  expect_in "${mode}_restart" err "restarting the job (1 of 1 restarts)"
  for r in 0 1 2 3; do grep -q '^restart_count=1$' "$OUT/rank_$r.rec" || fail "${mode}_restart: rank $r not restarted"; done
  expect_no_leftovers "${mode}_restart"
  ok "$mode: --max_restarts 1 restarts every node after rank 1 is killed, then finishes"

  # The launcher itself dies (SIGKILL): the remote agents see their stdin close and stop their ranks.
  OUT=$(fresh_out "${mode}_orphaned")
  timeout -k 5 60 "$FMLAUNCH" -H "$HOSTFILE" --launcher "$mode" "${extra[@]}" --master_port "$(free_port)" \
    --grace_period 1 "$PROBE" --out "$OUT" --hang "$MARK" >"$WORK/${mode}_orphaned.out" 2>"$WORK/${mode}_orphaned.err" &
  tpid=$!
  for _ in $(seq 100); do [ "$(find "$OUT" -name '*.rec' | wc -l)" = 4 ] && break; sleep 0.1; done
  [ "$(find "$OUT" -name '*.rec' | wc -l)" = 4 ] || fail "${mode}_orphaned: the job did not start"
  lpid=$(pgrep -P "$tpid" -f "$FMLAUNCH")
  [ -n "$lpid" ] || fail "${mode}_orphaned: fmlaunch not found"
  kill -KILL "$lpid"
  wait "$tpid" 2>/dev/null
  expect_no_leftovers "${mode}_orphaned"
  ok "$mode: when fmlaunch is SIGKILLed, every remote agent and rank stops"

  # SIGTERM to fmlaunch stops all nodes and exits 143.
  OUT=$(fresh_out "${mode}_sigterm")
  timeout -k 5 60 "$FMLAUNCH" -H "$HOSTFILE" --launcher "$mode" "${extra[@]}" --master_port "$(free_port)" \
    --grace_period 1 "$PROBE" --out "$OUT" --hang --ignore-term "$MARK" >"$WORK/${mode}_sigterm.out" 2>"$WORK/${mode}_sigterm.err" &
  tpid=$!
  for _ in $(seq 100); do [ "$(find "$OUT" -name '*.rec' | wc -l)" = 4 ] && break; sleep 0.1; done
  kill -TERM "$tpid"
  wait "$tpid"
  RC=$?
  expect_rc "${mode}_sigterm" 143
  expect_no_leftovers "${mode}_sigterm"
  ok "$mode: SIGTERM to fmlaunch stops every node (ranks ignoring SIGTERM get SIGKILL), exit 143"
done

# A node whose agent stops answering (SIGSTOP) is declared lost after --heartbeat_timeout, and the
# job is stopped; once the agent runs again it finds its launcher gone and stops its ranks.
OUT=$(fresh_out silent)
timeout -k 5 60 "$FMLAUNCH" -H "$HOSTFILE" --launcher ssh "${SSH_ARGS[@]}" --heartbeat_timeout 3 --grace_period 1 \
  --master_port "$(free_port)" "$PROBE" --out "$OUT" --hang "$MARK" >"$WORK/silent.out" 2>"$WORK/silent.err" &
tpid=$!
for _ in $(seq 100); do [ "$(find "$OUT" -name '*.rec' | wc -l)" = 4 ] && break; sleep 0.1; done
agent=$(pgrep -f "^$FMLAUNCH --nnodes 2 --nproc_per_node 2 --node_rank 1 .*$MARK")
[ -n "$agent" ] || fail "silent: node 1's agent not found"
kill -STOP "$agent"
wait "$tpid"
RC=$?
kill -CONT "$agent"
expect_rc silent 1
expect_in silent err "node 1 (localhost) sent nothing for 3 s; its agent is considered lost"
expect_no_leftovers silent
ok "ssh: a node silent for --heartbeat_timeout seconds fails the job; its agent stops its ranks once it runs again"

# Default launcher with a hostfile is pdsh (installed here); --ssh_port reaches a non-default port.
OUT=$(fresh_out default)
run default "$FMLAUNCH" -H "$HOSTFILE" --num_nodes 1 --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc default 0
expect_in default err "pdsh launcher, 1 node(s) (127.0.0.1)"
check_world default "$OUT" 2 "0 1" "0 0" --out "$OUT"
KEYARGS="-i $FM_TEST_SSH_KEY -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
OUT=$(fresh_out ssh_port)
run ssh_port "$FMLAUNCH" -H "$HOSTFILE" --launcher ssh --ssh_port "$FM_TEST_SSH_PORT" --launcher_args "$KEYARGS" \
  -i 127.0.0.1:1@localhost:0 --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc ssh_port 0
check_world ssh_port "$OUT" 2 "0 0" "0 1" --out "$OUT"
grep -q '^cuda_visible_devices=1$' "$OUT/rank_0.rec" || fail "ssh_port: --include 127.0.0.1:1 should give device 1"
OUT=$(fresh_out pdsh_port)
PDSH_SSH_ARGS_APPEND="$KEYARGS" run pdsh_port "$FMLAUNCH" -H "$HOSTFILE" --launcher pdsh --ssh_port "$FM_TEST_SSH_PORT" \
  -e localhost --master_port "$(free_port)" "$PROBE" --out "$OUT"
expect_rc pdsh_port 0
check_world pdsh_port "$OUT" 2 "0 1" "0 0" --out "$OUT"
ok "default launcher is pdsh with a hostfile; --ssh_port works for ssh and pdsh; include/exclude select nodes and slots"

# One reachable and one unreachable host: the pre-flight names the bad one, nothing starts.
printf '%s\n' '127.0.0.1 slots=1' '127.0.0.2 slots=1' >"$WORK/partly"
run unreachable "$FMLAUNCH" -H "$WORK/partly" --launcher ssh "${SSH_ARGS[@]}" "$PROBE" --out "$WORK" "$MARK"
expect_rc unreachable 2
expect_in unreachable err "error: $WORK/partly:2: host '127.0.0.2' is not reachable with ssh"
[ -z "$(find "$WORK" -maxdepth 1 -name 'rank_*.rec')" ] || fail "unreachable: a rank was started"
ok "ssh pre-flight: an unreachable host is an input error naming hostfile:line (exit 2)"

# A program missing on the nodes is reported by each node's agent (exit 2), before any rank runs.
run remote_missing "$FMLAUNCH" -H "$HOSTFILE" --launcher ssh "${SSH_ARGS[@]}" "$WORK/no-such-program" "$MARK"
expect_rc remote_missing 2
expect_in remote_missing err "error: PROGRAM: '$WORK/no-such-program' is not an executable program on host localhost"
ok "ssh: a program missing on a node is that node's input error; fmlaunch exits 2"
