# Bootstrap input errors: inconsistent launch variables, an unknown backend and a port in use each
# end the program with exit code 2 and a message naming the variable or flag.
set -u
probe=$1
fail() {
  echo "FAIL: $*"
  exit 1
}
# expect_error "TEXT" VAR=VALUE... -- ARGS...: runs the probe in a clean launch environment.
expect_error() {
  local text=$1
  shift
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  local out rc=0
  out=$(env -u OMPI_COMM_WORLD_RANK -u PMIX_RANK -u RANK -u WORLD_SIZE -u MASTER_ADDR -u MASTER_PORT \
    -u LOCAL_RANK -u SLURM_STEP_NUM_TASKS "${vars[@]}" timeout 60 "$probe" "$@" 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "${vars[*]} $*: exit $rc, expected 2: $out"
  grep -qF -- "$text" <<<"$out" || fail "${vars[*]} $*: expected '$text' in: $out"
  echo "ok: $text"
}
ok="MASTER_ADDR=127.0.0.1 MASTER_PORT=29500"
expect_error "error: RANK: is 4 but WORLD_SIZE is 4" RANK=4 WORLD_SIZE=4 $ok -- info
expect_error "error: RANK: 'one' is not a whole number" RANK=one WORLD_SIZE=4 $ok -- info
expect_error "error: WORLD_SIZE: 'four' is not a whole number" RANK=0 WORLD_SIZE=four $ok -- info
expect_error "error: WORLD_SIZE: is not set, but RANK is" RANK=0 $ok -- info
expect_error "error: MASTER_ADDR: is not set, but WORLD_SIZE is 2" RANK=1 WORLD_SIZE=2 MASTER_PORT=29500 -- info
expect_error "error: MASTER_PORT: must be in [1, 65535], got 99999" RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 \
  MASTER_PORT=99999 -- info
expect_error "error: LOCAL_RANK: '-' is not a whole number" RANK=1 WORLD_SIZE=2 LOCAL_RANK=- $ok -- info
expect_error "error: RANK: is not set, but the gloo backend needs" -- --backend gloo info
expect_error "error: --comm_backend: unknown communication backend 'ncll'" -- --backend ncll info
expect_error "error: SLURM_STEP_NUM_TASKS: is 4, but neither PMIX_RANK nor RANK is set" SLURM_STEP_NUM_TASKS=4 -- info

# A port already taken on rank 0's host.
port=$("$probe" free-port)
"$probe" hold-port "$port" >/dev/null &
holder=$!
for _ in $(seq 50); do ss -ltn 2>/dev/null | grep -q ":$port " && break; sleep 0.1; done
expect_error "error: MASTER_PORT: port $port is already in use on this host" RANK=0 WORLD_SIZE=2 \
  MASTER_ADDR=127.0.0.1 MASTER_PORT=$port -- info
kill "$holder"
wait "$holder" 2>/dev/null
true
