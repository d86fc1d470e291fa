# Sourced by the comm test scripts (which set $probe): starts ranks the way fmlaunch and torchrun
# do, with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1 and MASTER_PORT.
#   env_start N DIR [--reverse] -- COMMAND...   starts rank i with output DIR/rank<i>.out; PIDs
#                                               in ENV_PIDS. --reverse starts rank 0 last, a
#                                               moment after the others.
#   env_wait DIR RANK...                        waits for those ranks; exit codes in DIR/rank<i>.rc
#   env_launch N DIR [--reverse] -- COMMAND...  both, for every rank
# Every rank runs under `timeout -s KILL $ENV_LIMIT` (default 90 s), so a hang cannot outlive the
# test; a rank ended that way exits with 137.
env_start() {
  local n=$1 dir=$2 reverse=0 i
  shift 2
  if [ "$1" = --reverse ]; then reverse=1; shift; fi
  [ "$1" = -- ] && shift
  local port
  port=$("$probe" free-port)
  local order=()
  for ((i = 0; i < n; i++)); do order+=("$i"); done
  if [ $reverse = 1 ]; then order=(); for ((i = n - 1; i >= 0; i--)); do order+=("$i"); done; fi
  ENV_PIDS=()
  for i in "${order[@]}"; do
    RANK=$i WORLD_SIZE=$n LOCAL_RANK=$i MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
      timeout -s KILL "${ENV_LIMIT:-90}" "$@" >"$dir/rank$i.out" 2>&1 &
    ENV_PIDS[$i]=$!
    if [ $reverse = 1 ]; then sleep 0.3; fi
  done
}

env_wait() {
  local dir=$1 i rc
  shift
  for i in "$@"; do
    rc=0
    { wait "${ENV_PIDS[$i]}"; } 2>/dev/null || rc=$?
    echo "$rc" >"$dir/rank$i.rc"
  done
}

env_launch() {
  local n=$1 dir=$2
  env_start "$@"
  env_wait "$dir" $(seq 0 $((n - 1)))
}
