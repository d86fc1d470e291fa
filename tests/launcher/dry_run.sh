#!/usr/bin/env bash
# --dry_run prints the exact commands of every mode (ssh, pdsh, slurm, mpirun, containers), quoted
# so they can be pasted into a shell, with secrets shown as ***. Besides comparing the lines, the
# printed ssh command and rank lines are run through a real shell to show the words survive.
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1

# A clean environment makes the exported set predictable: PATH and FM_TEST_X (FM_ prefix).
E=(env -i PATH=/usr/bin:/bin HOME="$WORK" TMPDIR="$WORK" FM_TEST_X=1)
COMMON=(-H "$HOSTFILE" --master_port 29555 --env WANDB_API_KEY=s3cr3t --dry_run)
RANKS_SIMPLE=(
  "RANK=0 LOCAL_RANK=0 WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 NODE_RANK=0 GROUP_RANK=0 GROUP_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 CUDA_VISIBLE_DEVICES=0 FM_RESTART_COUNT=0 TORCHELASTIC_RESTART_COUNT=0 FM_LAUNCHER_TAGS=1"
  "RANK=1 LOCAL_RANK=1 WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 NODE_RANK=0 GROUP_RANK=0 GROUP_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 CUDA_VISIBLE_DEVICES=1 FM_RESTART_COUNT=0 TORCHELASTIC_RESTART_COUNT=0 FM_LAUNCHER_TAGS=1"
  "RANK=2 LOCAL_RANK=0 WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 NODE_RANK=1 GROUP_RANK=1 GROUP_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 CUDA_VISIBLE_DEVICES=0 FM_RESTART_COUNT=0 TORCHELASTIC_RESTART_COUNT=0 FM_LAUNCHER_TAGS=1"
  "RANK=3 LOCAL_RANK=1 WORLD_SIZE=4 LOCAL_WORLD_SIZE=2 NODE_RANK=1 GROUP_RANK=1 GROUP_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 CUDA_VISIBLE_DEVICES=1 FM_RESTART_COUNT=0 TORCHELASTIC_RESTART_COUNT=0 FM_LAUNCHER_TAGS=1")

expect_line() {  # expect_line NAME LINE: LINE must be one of the printed lines, exactly
  grep -qxF -- "$2" "$WORK/$1.out" || fail "$1: missing line
  want: $2
$(show "$1")"
}
no_secret() {
  expect_not_in "$1" out s3cr3t
  expect_not_in "$1" err s3cr3t
}

# ssh: one command per node; the remote command exports the variables and execs the agent.
run ssh "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher ssh --ssh_port 2222 --launcher_args "-F '/etc/fm ssh.cfg'" \
  /opt/prog 'a b' c
expect_rc ssh 0
REMOTE_ENV="export FM_TEST_X=1 PATH=/usr/bin:/bin WANDB_API_KEY='\\''***'\\''"
AGENT_TAIL="--master_addr 127.0.0.1 --master_port 29555 --grace_period 5 --control -- /opt/prog '\\''a b'\\'' c"
expect_line ssh "ssh -o BatchMode=yes -p 2222 -F '/etc/fm ssh.cfg' 127.0.0.1 'cd $WORK && $REMOTE_ENV && exec $FMLAUNCH --nnodes 2 --nproc_per_node 2 --node_rank 0 --host_label 127.0.0.1 $AGENT_TAIL'"
expect_line ssh "ssh -o BatchMode=yes -p 2222 -F '/etc/fm ssh.cfg' localhost 'cd $WORK && $REMOTE_ENV && exec $FMLAUNCH --nnodes 2 --nproc_per_node 2 --node_rank 1 --host_label localhost $AGENT_TAIL'"
for r in 0 1 2 3; do expect_line ssh "${RANKS_SIMPLE[$r]} /opt/prog 'a b' c"; done
no_secret ssh
ok "dry_run ssh: one ssh per node, exports and agent arguments exact, secret masked"

# pdsh: one command for all nodes; '%' doubled, the node's host filled in by pdsh (%h).
run pdsh "${E[@]}" PDSH_SSH_ARGS_APPEND="-F /etc/fm.cfg" "$FMLAUNCH" "${COMMON[@]}" --launcher pdsh --ssh_port 2222 \
  /opt/prog 'a b' 100%
expect_rc pdsh 0
expect_line pdsh "PDSH_SSH_ARGS_APPEND='-F /etc/fm.cfg -p 2222' pdsh -S -N -R ssh -f 1024 -w 127.0.0.1,localhost 'cd $WORK && $REMOTE_ENV && exec $FMLAUNCH --nnodes 2 --nproc_per_node 2 --world_hosts 127.0.0.1,localhost --host_label %h --master_addr 127.0.0.1 --master_port 29555 --grace_period 5 --control -- /opt/prog '\\''a b'\\'' 100%%'"
no_secret pdsh
ok "dry_run pdsh: one pdsh, PDSH_SSH_ARGS_APPEND extended with the port, % escaped, secret masked"

# slurm: one srun, one agent per node; the agents find their node rank from SLURMD_NODENAME.
run slurm "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher slurm --launcher_args "--partition=gpu" /opt/prog 'a b' c
expect_rc slurm 0
expect_line slurm "WANDB_API_KEY='***' srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --nodelist=127.0.0.1,localhost --kill-on-bad-exit=1 --input=all --partition=gpu $FMLAUNCH --nnodes 2 --nproc_per_node 2 --world_hosts 127.0.0.1,localhost --master_addr 127.0.0.1 --master_port 29555 --grace_period 5 --control -- /opt/prog 'a b' c"
no_secret slurm
ok "dry_run slurm: one srun with --ntasks-per-node=1 running the agents"

# mpirun: hostfile from the selection, -x for every exported variable, root flag when root.
ROOT=""
[ "$(id -u)" = 0 ] && ROOT=" --allow-run-as-root"
run mpirun "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher mpirun --launcher_args "--oversubscribe" /opt/prog 'a b' c
expect_rc mpirun 0
MHF=$(sed -n 's/^# mpirun hostfile \(.*\):$/\1/p' "$WORK/mpirun.out")
[[ "$MHF" == "$WORK"/fmlaunch-hostfile-* ]] || fail "mpirun: hostfile path '$MHF' not under TMPDIR"
expect_line mpirun "#   127.0.0.1 x2"
expect_line mpirun "#   localhost x2"
expect_line mpirun "WANDB_API_KEY='***' MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 FM_RESTART_COUNT=0 mpirun -np 4 --hostfile $MHF --map-by slot --tag-output$ROOT -x FM_TEST_X -x PATH -x WANDB_API_KEY -x MASTER_ADDR -x MASTER_PORT -x FM_RESTART_COUNT --oversubscribe /opt/prog 'a b' c"
no_secret mpirun
ok "dry_run mpirun: -np/--hostfile/--map-by/-x lines exact"

# Containers: apptainer by default (neither is installed here), singularity when asked.
run mpirun_container "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher mpirun --container /img/fm.sif \
  --container_args "--bind /data:/data" /opt/prog 'a b'
expect_rc mpirun_container 0
expect_line mpirun_container "WANDB_API_KEY='***' MASTER_ADDR=127.0.0.1 MASTER_PORT=29555 FM_RESTART_COUNT=0 mpirun -np 4 --hostfile $(sed -n 's/^# mpirun hostfile \(.*\):$/\1/p' "$WORK/mpirun_container.out") --map-by slot --tag-output$ROOT -x FM_TEST_X -x PATH -x WANDB_API_KEY -x MASTER_ADDR -x MASTER_PORT -x FM_RESTART_COUNT apptainer exec --nv --bind /data:/data /img/fm.sif /opt/prog 'a b'"
run ssh_container "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher ssh --container /img/fm.sif --container_runtime singularity \
  /opt/prog 'a b'
expect_rc ssh_container 0
expect_line ssh_container "ssh -o BatchMode=yes 127.0.0.1 'cd $WORK && $REMOTE_ENV && exec $FMLAUNCH --nnodes 2 --nproc_per_node 2 --node_rank 0 --host_label 127.0.0.1 --master_addr 127.0.0.1 --master_port 29555 --grace_period 5 --container /img/fm.sif --container_runtime singularity --control -- /opt/prog '\\''a b'\\'''"
for r in 0 1 2 3; do expect_line ssh_container "${RANKS_SIMPLE[$r]} singularity exec --nv /img/fm.sif /opt/prog 'a b'"; done
run local_container "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher local --container /img/fm.sif /opt/prog 'a b'
expect_rc local_container 0
for r in 0 1 2 3; do expect_line local_container "${RANKS_SIMPLE[$r]} WANDB_API_KEY='***' apptainer exec --nv /img/fm.sif /opt/prog 'a b'"; done
no_secret mpirun_container
no_secret ssh_container
no_secret local_container
ok "dry_run --container: 'apptainer|singularity exec --nv [args] IMAGE PROGRAM ARGS' per rank, in every mode"

# Round trip through a real shell: the printed ssh command's remote part, and a printed rank line,
# deliver the odd arguments unchanged. A recorder stands in for fmlaunch / the program.
cat >"$WORK/recorder.sh" <<'EOF'
#!/bin/bash
out=$RECORD_TO
: >"$out"
for a in "$@"; do printf '%s' "$a" | od -An -v -tx1 | tr -d ' \n' >>"$out"; echo >>"$out"; done
echo "RANK=${RANK:-unset} FM_TEST_X=${FM_TEST_X:-unset} WANDB_API_KEY=${WANDB_API_KEY:-unset}" >>"$out"
EOF
chmod +x "$WORK/recorder.sh"
expect_words() {  # expect_words NAME FILE WORDS...
  local name=$1 file=$2 i=1 w
  shift 2
  for w in "$@"; do
    [ "$(sed -n "${i}p" "$file")" = "$(hexof "$w")" ] || fail "$name: word $i is not '$w'"
    i=$((i + 1))
  done
  [ "$(wc -l <"$file")" = "$((i))" ] || fail "$name: extra words in $(cat "$file")"
}
run ssh_weird "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher ssh "$WORK/recorder.sh" "${WEIRD[@]}"
expect_rc ssh_weird 0
line=$(awk '/^ssh .* localhost /{found=1} found && /^# ranks/{exit} found' "$WORK/ssh_weird.out")
eval "words=($line)"
remote=${words[${#words[@]} - 1]}
[ "${words[${#words[@]} - 2]}" = localhost ] || fail "ssh_weird: the host is not the word before the command"
RECORD_TO=$WORK/remote.rec sh -c "${remote/exec $FMLAUNCH/exec $WORK/recorder.sh}"
expect_words ssh_weird "$WORK/remote.rec" --nnodes 2 --nproc_per_node 2 --node_rank 1 --host_label localhost \
  --master_addr 127.0.0.1 --master_port 29555 --grace_period 5 --control -- "$WORK/recorder.sh" "${WEIRD[@]}"
grep -q "FM_TEST_X=1 WANDB_API_KEY=\*\*\*" "$WORK/remote.rec" || fail "ssh_weird: exports did not reach the remote shell"
run local_weird "${E[@]}" "$FMLAUNCH" "${COMMON[@]}" --launcher local "$WORK/recorder.sh" "${WEIRD[@]}"
expect_rc local_weird 0
line=$(sed -n '/^# ranks/,$p' "$WORK/local_weird.out" | sed '1d' | awk '/^RANK=3 /{found=1} found' | awk 'NR>1 && /^RANK=/{exit} {print}')
(export RECORD_TO=$WORK/rank3.rec; eval "$line")
expect_words local_weird "$WORK/rank3.rec" "${WEIRD[@]}"
grep -q "^RANK=3 " "$WORK/rank3.rec" || fail "local_weird: the rank line did not set RANK=3"
ok "dry_run: printed ssh command and rank lines, pasted into a shell, deliver the odd arguments unchanged"
