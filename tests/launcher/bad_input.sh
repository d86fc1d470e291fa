#!/usr/bin/env bash
# Every kind of bad input: exit code 2, a message naming the file:line or the option, and nothing
# started (the program would create $WORK/started).
source "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1

PROG=(/usr/bin/touch "$WORK/started")
bad() {  # bad NAME EXPECTED_TEXT CMD...
  local name=$1 text=$2
  shift 2
  run "$name" "$@"
  expect_rc "$name" 2
  expect_in "$name" err "$text"
  [ ! -e "$WORK/started" ] || fail "$name: the program was started"
  ok "$name: exit 2 with '$text'"
}
hostfile() {  # hostfile NAME LINES...: writes $WORK/NAME
  local f=$WORK/$1
  shift
  printf '%s\n' "$@" >"$f"
  echo "$f"
}

# Hostfiles.
bad missing_hostfile "error: --hostfile: cannot read hostfile '$WORK/nope'" "$FMLAUNCH" -H "$WORK/nope" "${PROG[@]}"
HF=$(hostfile malformed 'node01 slots=2' 'node02 slots 2')
bad malformed_line "$HF:2: bad hostfile line 'node02 slots 2'" "$FMLAUNCH" -H "$HF" "${PROG[@]}"
HF=$(hostfile bad_slots '# c' 'node01 slots=two')
bad bad_slots "$HF:2: slots must be a positive integer" "$FMLAUNCH" -H "$HF" "${PROG[@]}"
HF=$(hostfile duplicate 'node01 slots=2' 'node02 slots=2' 'node01 slots=4')
bad duplicate_host "$HF:3: host 'node01' is listed twice (first at line 1)" "$FMLAUNCH" -H "$HF" "${PROG[@]}"
HF=$(hostfile zero 'node01 slots=0')
bad zero_slots "$HF:1: host 'node01' has zero slots" "$FMLAUNCH" -H "$HF" "${PROG[@]}"
HF=$(hostfile empty '# only a comment' '')
bad empty_hostfile "$HF: the hostfile lists no hosts" "$FMLAUNCH" -H "$HF" "${PROG[@]}"
HF=$(hostfile meta 'node01 slots=1' 'node02;touch${IFS}/tmp/pwned slots=1')
bad shell_meta_host "$HF:2: 'node02;touch\${IFS}/tmp/pwned' is not a valid host name" \
  "$FMLAUNCH" -H "$HF" --launcher ssh "${PROG[@]}"
HF=$(hostfile option_host '-oProxyCommand=touch slots=1')
bad option_like_host "$HF:1: '-oProxyCommand=touch' is not a valid host name" "$FMLAUNCH" -H "$HF" --launcher ssh "${PROG[@]}"
bad master_addr_meta "error: --master_addr: 'a\$(id)' is not a valid host name" \
  "$FMLAUNCH" --master_addr 'a$(id)' "${PROG[@]}"

# Include / exclude / counts.
HF=$(hostfile two 'node01 slots=2' 'node02 slots=2')
bad include_unknown_host "error: --include: host 'node03' is not in the hostfile $HF" \
  "$FMLAUNCH" -H "$HF" -i node03 "${PROG[@]}"
bad include_near_miss "did you mean 'node01'?" "$FMLAUNCH" -H "$HF" -i node0l "${PROG[@]}"
bad include_unknown_slot "error: --include: host 'node01' has no slot 7 (it has slots 0-1)" \
  "$FMLAUNCH" -H "$HF" -i node01:7 "${PROG[@]}"
bad exclude_unknown_host "error: --exclude: host 'node09' is not in the hostfile" \
  "$FMLAUNCH" -H "$HF" -e node09 "${PROG[@]}"
bad exclude_unknown_slot "error: --exclude: host 'node02' has no slot 2" "$FMLAUNCH" -H "$HF" -e node02:2 "${PROG[@]}"
bad exclude_everything "error: --exclude: excludes every slot" "$FMLAUNCH" -H "$HF" -e node01@node02 "${PROG[@]}"
bad include_and_exclude "error: --include: cannot be combined with --exclude" \
  "$FMLAUNCH" -H "$HF" -i node01 -e node02 "${PROG[@]}"
bad num_nodes_with_include "error: --num_nodes: cannot be combined with --include" \
  "$FMLAUNCH" -H "$HF" -i node01 --num_nodes 1 "${PROG[@]}"
bad num_gpus_with_exclude "error: --num_gpus: cannot be combined with --exclude" \
  "$FMLAUNCH" -H "$HF" -e node01 --num_gpus 1 "${PROG[@]}"
bad too_many_nodes "error: --num_nodes: asks for 3 nodes but $HF lists 2" "$FMLAUNCH" -H "$HF" --num_nodes 3 "${PROG[@]}"
bad too_many_gpus "error: --num_gpus: asks for 4 processes per node but host 'node01' has 2 slots" \
  "$FMLAUNCH" -H "$HF" --num_gpus 4 "${PROG[@]}"
bad num_nodes_without_hostfile "error: --num_nodes: asks for 2 nodes but no hostfile was given" \
  "$FMLAUNCH" --num_nodes 2 "${PROG[@]}"

# Options and program.
bad unknown_launcher "error: --launcher: unknown launcher 'pdssh'" "$FMLAUNCH" --launcher pdssh "${PROG[@]}"
expect_in unknown_launcher err "did you mean 'pdsh'?"
bad unknown_option "error: --num-gpu: unknown option" "$FMLAUNCH" --num-gpu 2 "${PROG[@]}"
expect_in unknown_option err "did you mean '--num_gpus'?"
bad no_program "error: PROGRAM: no program to launch was given" "$FMLAUNCH" -H "$HF" --num_gpus 1
bad missing_value "error: --master_port: needs a value" "$FMLAUNCH" --master_port
bad bad_port "error: --master_port: expects an integer in [1, 65535], got '99999'" \
  "$FMLAUNCH" --master_port 99999 "${PROG[@]}"
bad bad_launcher_args "error: --launcher_args: unterminated single quote" \
  "$FMLAUNCH" --launcher_args "-o 'x" "${PROG[@]}"
bad program_not_found "error: PROGRAM: 'no-such-program-xyz' is not an executable program" \
  "$FMLAUNCH" no-such-program-xyz
bad ssh_port_for_local "error: --ssh_port: does not apply to the local launcher" \
  "$FMLAUNCH" --ssh_port 2222 "${PROG[@]}"
bad container_runtime_missing "error: --container: neither apptainer nor singularity is installed" \
  env PATH=/usr/bin:/bin "$FMLAUNCH" --container /img/fm.sif "${PROG[@]}"
bad slurm_outside_allocation "error: --launcher slurm: must run inside a Slurm allocation (SLURM_JOB_ID is not set)" \
  env -u SLURM_JOB_ID "$FMLAUNCH" --launcher slurm "${PROG[@]}"

# Env files: a line without '=' names file:line (default ./.fmenv and --env_file).
printf '%s\n' '# settings' 'NCCL_DEBUG=INFO' 'JUST_A_WORD' >"$WORK/.fmenv"
bad env_file_default "error: .fmenv:3: line 'JUST_A_WORD' has no '='" "$FMLAUNCH" "${PROG[@]}"
rm -f "$WORK/.fmenv"
printf '%s\n' 'export A=1' '9LIVES=x' >"$WORK/bad.env"
bad env_file_bad_name "error: $WORK/bad.env:2: '9LIVES' is not a valid variable name" \
  "$FMLAUNCH" --env_file "$WORK/bad.env" "${PROG[@]}"
bad env_file_missing "error: --env_file: cannot read env file" "$FMLAUNCH" --env_file "$WORK/none.env" "${PROG[@]}"
bad env_flag_no_equals "error: --env: 'WANDB_API_KEY' is not KEY=VALUE" "$FMLAUNCH" --env WANDB_API_KEY "${PROG[@]}"

# Unreachable host: the ssh pre-flight fails before anything starts (a port nothing listens on).
HF=$(hostfile unreachable '127.0.0.1 slots=1')
DEAD_PORT=$(free_port)
bad unreachable_ssh "error: $HF:1: host '127.0.0.1' is not reachable with ssh" \
  "$FMLAUNCH" -H "$HF" --launcher ssh --ssh_port "$DEAD_PORT" "${PROG[@]}"
bad unreachable_pdsh "error: $HF:1: host '127.0.0.1' is not reachable with ssh" \
  "$FMLAUNCH" -H "$HF" --launcher pdsh --ssh_port "$DEAD_PORT" "${PROG[@]}"

# The agent form.
bad agent_needs_node_rank "error: --node_rank: is required with --nnodes 2" \
  env -u SLURM_NODEID "$FMLAUNCH" --nnodes 2 --master_addr 127.0.0.1 "${PROG[@]}"
bad agent_node_rank_range "error: --node_rank: is 2 but there are only 2 node(s)" \
  "$FMLAUNCH" --nnodes 2 --node_rank 2 --master_addr 127.0.0.1 "${PROG[@]}"
bad agent_needs_master "error: --master_addr: is required with --nnodes 2" \
  "$FMLAUNCH" --nnodes 2 --node_rank 1 "${PROG[@]}"
bad agent_with_hostfile "error: -H: cannot be combined with --nnodes" "$FMLAUNCH" -H "$HF" --nnodes 1 "${PROG[@]}"
bad agent_elastic "error: --nnodes: elastic ranges ('1:4') are not supported" "$FMLAUNCH" --nnodes 1:4 "${PROG[@]}"
bad devices_too_few "error: CUDA_VISIBLE_DEVICES: on host" \
  env CUDA_VISIBLE_DEVICES=3 "$FMLAUNCH" --nproc_per_node 2 "${PROG[@]}"
