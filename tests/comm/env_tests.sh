# The communicators on the environment-variable path (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
# our rendezvous store plus Gloo. Collectives, point-to-point, groups and topologies on 1, 2 and 4
# ranks (rank 0 started last once), timeouts naming the silent rank, and liveness: a rank killed
# or stopped mid-collective ends every other rank with a message naming it.
set -u
probe=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/env_launch.sh"
tag="comm-env-$$"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*"
  for f in "$work"/*/rank*.out; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done
  exit 1
}
run() {  # run NAME N [--reverse] ARGS... : ranks' outputs and codes in $work/NAME
  local name=$1 n=$2
  shift 2
  local order=()
  if [ "${1:-}" = --reverse ]; then order=(--reverse); shift; fi
  mkdir -p "$work/$name"
  env_launch "$n" "$work/$name" "${order[@]}" -- "$probe" --tag "$tag" "$@"
}
rc_of() { cat "$work/$1/rank$2.rc"; }
out_of() { cat "$work/$1/rank$2.out"; }
expect_out() {  # expect_out NAME RANK TEXT
  grep -qF -- "$3" "$work/$1/rank$2.out" || fail "$1: rank $2 should print: $3"
}

run one 1 all
[ "$(rc_of one 0)" = 0 ] || fail "one: exit $(rc_of one 0)"
expect_out one 0 "all checks passed (single)"
for n in 2 4; do
  order=()
  [ "$n" = 4 ] && order=(--reverse)
  run "all$n" "$n" "${order[@]}" all --pipe-sizes 1,2,4
  for ((i = 0; i < n; i++)); do
    [ "$(rc_of "all$n" $i)" = 0 ] || fail "all$n: rank $i exited $(rc_of "all$n" $i)"
    expect_out "all$n" $i "rank $i: all checks passed (gloo)"
  done
  echo "ok: collectives, p2p and groups on $n Gloo ranks${order:+ (rank 0 started last)}"
done
expect_out all4 0 "gloo backend, 4 ranks on 1 host"

run info 2 info
expect_out info 1 "rank 1 of 2, local rank 1 of 2"

run trecv 2 timeout-recv --timeout 2
[ "$(rc_of trecv 0)" != 0 ] && [ "$(rc_of trecv 1)" != 0 ] || fail "trecv: both ranks must fail"
expect_out trecv 0 "rank 0: recv from rank 1 (world) timed out after 2 s — rank 1 is probably dead or stuck"
# Rank 1 sleeps outside any wait: the watchdog ends it, with rank 0's reason.
expect_out trecv 1 "rank 1: ending this process: rank 0 (host"
expect_out trecv 1 "failed: rank 0: recv from rank 1 (world) timed out"
echo "ok: recv timeout names the silent peer; the others learn why"

# Three ranks: both neighbours of rank 1 in the ring wait for it directly, so whichever times out
# first names it.
run tcoll 3 timeout-collective --timeout 2
for i in 0 1 2; do [ "$(rc_of tcoll $i)" != 0 ] || fail "tcoll: rank $i must fail"; done
grep -qF "all_reduce of 10 f32 (world, ranks 0,1,2) timed out after 2 s — rank 1 is probably dead or stuck, or did not call it" \
  "$work"/tcoll/rank*.out || fail "tcoll: a timeout naming rank 1"
echo "ok: collective timeout names the rank that did not join"

# Liveness with a 120 s comm timeout: survivors must exit with code 1 (not 137 from the 30 s kill
# limit), naming the lost rank.
for victim in 2 0; do
  name="kill$victim"
  mkdir -p "$work/$name"
  start=$SECONDS
  ENV_LIMIT=30 env_start 4 "$work/$name" -- "$probe" --tag "$tag" liveness --victim $victim --timeout 120
  env_wait "$work/$name" 0 1 2 3
  took=$((SECONDS - start))
  [ "$(rc_of $name $victim)" = 137 ] || fail "$name: the victim should die of SIGKILL"
  for i in 0 1 2 3; do
    [ $i = $victim ] && continue
    [ "$(rc_of $name $i)" = 1 ] || fail "$name: rank $i exited $(rc_of $name $i), expected 1"
    expect_out $name $i "rank $victim"
    expect_out $name $i "lost"
  done
  echo "ok: SIGKILL of rank $victim ends every other rank naming it (${took} s)"
done

# A stopped (not dead) rank: its connections stay open, its heartbeats stop.
name=stop1
mkdir -p "$work/$name"
ENV_LIMIT=30 env_start 4 "$work/$name" -- "$probe" --tag "$tag" liveness --victim 1 --stop --timeout 120 \
  --heartbeat-timeout 3
env_wait "$work/$name" 0 2 3
for i in 0 2 3; do
  [ "$(rc_of $name $i)" = 1 ] || fail "$name: rank $i exited $(rc_of $name $i), expected 1"
  expect_out $name $i "rank 1 (host"
  expect_out $name $i "no heartbeat for 3 s"
done
{
  pkill -KILL -P "${ENV_PIDS[1]}"  # the stopped probe under `timeout`
  env_wait "$work/$name" 1
} 2>/dev/null
echo "ok: a stopped rank is reported lost after the heartbeat timeout"

sleep 0.5
left=$(pgrep -f -- "--tag $tag" || true)
[ -z "$left" ] || fail "processes left running: $left"
echo "ok: nothing left running"
