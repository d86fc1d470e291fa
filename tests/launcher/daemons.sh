#!/usr/bin/env bash
# Starts and stops the daemons the launcher tests use, on localhost, in a directory of their own:
#   daemons.sh start DIR [ssh] [slurm]   (both when none is named)
#   daemons.sh stop DIR
#   daemons.sh free-port [N]            prints a port P with P..P+N-1 free (for MASTER_PORT)
# `start` prints shell lines to source (also written to DIR/env.sh):
#   FM_TEST_SSH_CONFIG   ssh_config for 127.0.0.1 and localhost (port, key, no host-key prompts)
#   FM_TEST_SSH_PORT     the sshd port (127.0.0.1 only, key-only root login)
#   FM_TEST_SSH_KEY      the client key
#   PDSH_RCMD_TYPE=ssh, PDSH_SSH_ARGS_APPEND="-F $FM_TEST_SSH_CONFIG"
#   SLURM_CONF           a two-node cluster (nodes fmnode1, fmnode2, both this machine, 4 CPUs each)
# Every daemon's PID goes to DIR/pids; `stop` cancels Slurm jobs, then stops each daemon by PID
# (TERM, then KILL after 5 s). Nothing is stopped by name. Ports are picked free at start.
# Needs root (sshd with root login, munged as user munge, slurmd); see scripts/setup.sh --test.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ "$cmd" != free-port ] && { [ -z "$cmd" ] || [ -z "$dir" ]; }; then
  echo "usage: daemons.sh start|stop DIR [ssh] [slurm]" >&2
  exit 2
fi
shift 2 || shift $#

# A base port whose next $1 ports are all free (by `ss`).
free_ports() {
  local n=$1 used p i ok
  used=$(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % 30000))
    ok=1
    for ((i = 0; i < n; i++)); do
      if grep -qx "$((p + i))" <<<"$used"; then ok=0; fi
    done
    if [ "$ok" = 1 ]; then
      echo "$p"
      return 0
    fi
  done
  echo "daemons.sh: no free port found" >&2
  return 1
}

wait_for() {  # wait_for SECONDS CMD...: polls CMD every 0.1 s
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then return 1; fi
    sleep 0.1
  done
}

start_ssh() {
  local s=$dir/ssh port
  for tool in /usr/sbin/sshd ssh ssh-keygen pdsh; do
    command -v "$tool" >/dev/null || { echo "daemons.sh: $tool is missing; run scripts/setup.sh --test" >&2; exit 1; }
  done
  mkdir -p "$s" /run/sshd
  ssh-keygen -q -t ed25519 -N '' -f "$s/host_ed25519"
  ssh-keygen -q -t ed25519 -N '' -f "$s/id_ed25519"
  cp "$s/id_ed25519.pub" "$s/authorized_keys"
  chmod 600 "$s/authorized_keys"
  port=$(free_ports 1)
  printf '%s\n' "Port $port" 'ListenAddress 127.0.0.1' "HostKey $s/host_ed25519" "PidFile $s/sshd.pid" \
    "AuthorizedKeysFile $s/authorized_keys" 'PermitRootLogin prohibit-password' 'PasswordAuthentication no' \
    'KbdInteractiveAuthentication no' 'UsePAM no' 'StrictModes no' 'MaxStartups 100' 'MaxSessions 100' \
    >"$s/sshd_config"
  /usr/sbin/sshd -f "$s/sshd_config" -E "$s/sshd.log"
  wait_for 5 test -s "$s/sshd.pid" || { echo "daemons.sh: sshd did not start: $(cat "$s/sshd.log")" >&2; exit 1; }
  echo "sshd=$(cat "$s/sshd.pid")" >>"$dir/pids"
  printf '%s\n' 'Host 127.0.0.1 localhost' "  Port $port" "  User $(id -un)" "  IdentityFile $s/id_ed25519" \
    '  StrictHostKeyChecking no' '  UserKnownHostsFile /dev/null' '  LogLevel ERROR' '  BatchMode yes' \
    >"$s/ssh_config"
  wait_for 5 ssh -F "$s/ssh_config" 127.0.0.1 true || { echo "daemons.sh: ssh to 127.0.0.1:$port fails" >&2; exit 1; }
  {
    echo "export FM_TEST_SSH_CONFIG=$s/ssh_config"
    echo "export FM_TEST_SSH_PORT=$port"
    echo "export FM_TEST_SSH_KEY=$s/id_ed25519"
    echo "export PDSH_RCMD_TYPE=ssh"
    echo "export PDSH_SSH_ARGS_APPEND=\"-F $s/ssh_config\""
  } >>"$dir/env.sh"
}

start_slurm() {
  local d=$dir/slurm port
  for tool in munged slurmctld slurmd sinfo srun sbatch scontrol; do
    command -v "$tool" >/dev/null || { echo "daemons.sh: $tool is missing; run scripts/setup.sh --test" >&2; exit 1; }
  done
  [ -s /etc/munge/munge.key ] || { echo "daemons.sh: /etc/munge/munge.key is missing (reinstall munge)" >&2; exit 1; }
  mkdir -p "$d/state" "$d/log" "$d/spool/fmnode1" "$d/spool/fmnode2" "$d/munge"
  # munged runs as user munge and insists on a private socket directory it can reach.
  chmod 755 "$dir" "$d"
  chown munge:munge "$d/munge"
  chmod 711 "$d/munge"
  runuser -u munge -- /usr/sbin/munged --socket="$d/munge/munge.sock" --pid-file="$d/munge/munged.pid" \
    --log-file="$d/munge/munged.log" --seed-file="$d/munge/munged.seed"
  wait_for 5 test -s "$d/munge/munged.pid" || { echo "daemons.sh: munged did not start" >&2; exit 1; }
  echo "munged=$(cat "$d/munge/munged.pid")" >>"$dir/pids"
  port=$(free_ports 3)
  cat >"$d/slurm.conf" <<CONF
ClusterName=fmlaunch
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$d/munge/munge.sock
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd-%n.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd-%n.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=fmnode1 NodeHostname=fmnode1 NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=4 RealMemory=4000 State=UNKNOWN
NodeName=fmnode2 NodeHostname=fmnode2 NodeAddr=127.0.0.1 Port=$((port + 2)) CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=fmnode1,fmnode2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  export SLURM_CONF=$d/slurm.conf
  setsid slurmctld -D -i >"$d/log/slurmctld.out" 2>&1 </dev/null &
  echo "slurmctld=$!" >>"$dir/pids"
  setsid slurmd -D -N fmnode1 >"$d/log/slurmd1.out" 2>&1 </dev/null &
  echo "slurmd1=$!" >>"$dir/pids"
  setsid slurmd -D -N fmnode2 >"$d/log/slurmd2.out" 2>&1 </dev/null &
  echo "slurmd2=$!" >>"$dir/pids"
  is_idle() { [ "$(sinfo -h -o %t 2>/dev/null | sort -u | tr -d '\n')" = idle ]; }
  wait_for 20 is_idle || {
    echo "daemons.sh: Slurm did not come up:" >&2
    tail -n 5 "$d/log/slurmctld.out" "$d/log/slurmd1.out" "$d/log/slurmd2.out" >&2
    exit 1
  }
  echo "export SLURM_CONF=$d/slurm.conf" >>"$dir/env.sh"
}

stop_all() {
  [ -f "$dir/pids" ] || return 0
  if [ -f "$dir/slurm/slurm.conf" ]; then
    # Running jobs outlive slurmd (their slurmstepd is separate): cancel them first.
    export SLURM_CONF=$dir/slurm/slurm.conf
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      wait_for 10 bash -c '[ -z "$(squeue -h -o %i 2>/dev/null)" ]' || true
    fi
  fi
  local pids=() name pid
  # Reverse start order: slurmd before slurmctld before munged.
  while IFS='=' read -r name pid; do
    [ -n "$pid" ] && pids=("$pid" "${pids[@]}")
  done <"$dir/pids"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  local end=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$dir/pids"
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    : >"$dir/env.sh"
    want=("$@")
    [ "${#want[@]}" -gt 0 ] || want=(ssh slurm)
    for w in "${want[@]}"; do
      case "$w" in
        ssh) start_ssh ;;
        slurm) start_slurm ;;
        *) echo "daemons.sh: unknown daemon set '$w' (ssh, slurm)" >&2; exit 2 ;;
      esac
    done
    cat "$dir/env.sh"
    ;;
  stop) stop_all ;;
  free-port) free_ports "${dir:-1}" ;;
  *) echo "usage: daemons.sh start|stop DIR [ssh] [slurm]" >&2; exit 2 ;;
esac
