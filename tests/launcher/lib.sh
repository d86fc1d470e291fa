# Helpers shared by the launcher test scripts (sourced; not a test by itself).
# Each script is run by meson as: bash SCRIPT FMLAUNCH RANK_PROBE
set -uo pipefail

FMLAUNCH=$(realpath "${1:?usage: SCRIPT FMLAUNCH RANK_PROBE}")
PROBE=$(realpath "${2:?usage: SCRIPT FMLAUNCH RANK_PROBE}")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d /tmp/fmlaunch-test.XXXXXX)
chmod 755 "$WORK"
# Every process of a job carries this in its argv, so leftovers can be found with ps.
MARK="fmlaunch-test-mark-$$-$RANDOM"
# Arguments that break naive quoting, for every mode (ssh and pdsh included).
WEIRD=('a b' "it's" '"double"' '$HOME' '`id`' '$(id)' $'line1\nline2' 'x;y' '' '*' '%h %n %%' 'back\slash'
       '-H' '--hostfile' $'tab\there' "'" '&|<>' '!bang')
HOSTFILE=$WORK/hostfile
printf '%s\n' '# two nodes, both this machine' '127.0.0.1 slots=2' 'localhost slots=2' >"$HOSTFILE"

CLEANUPS=()
FAILED=0
on_exit() {
  local c
  for c in "${CLEANUPS[@]+"${CLEANUPS[@]}"}"; do eval "$c" || true; done
  if [ "$FAILED" = 0 ]; then rm -rf "$WORK"; else echo "(kept $WORK for inspection)" >&2; fi
}
trap on_exit EXIT
trap 'exit 1' INT TERM

fail() {
  FAILED=1
  echo "FAIL: $*" >&2
  exit 1
}
ok() { echo "ok - $*"; }

hexof() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# run NAME CMD...: runs CMD with stdout/stderr in $WORK/NAME.out/.err (a 120 s limit guards
# against hangs); sets RC.
run() {
  local name=$1
  shift
  timeout -k 5 120 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  RC=$?
}

show() {  # show NAME: the captured output, for failure messages
  echo "--- stdout:"
  tail -n 30 "$WORK/$1.out"
  echo "--- stderr:"
  tail -n 30 "$WORK/$1.err"
}

expect_rc() {  # expect_rc NAME WANT
  [ "$RC" = "$2" ] || fail "$1: exit code $RC, expected $2
$(show "$1")"
}

expect_in() {  # expect_in NAME FILE(out|err) TEXT
  grep -qF -- "$3" "$WORK/$1.$2" || fail "$1: '$3' not found in std$2
$(show "$1")"
}

expect_not_in() {
  if grep -qF -- "$3" "$WORK/$1.$2"; then fail "$1: '$3' must not appear in std$2
$(show "$1")"; fi
}

# check_world NAME DIR N "LOCAL_RANKS" "NODE_RANKS" ARGS...: every rank 0..N-1 ran exactly once
# with these local/node ranks ("-" skips a check), met all its peers, and got exactly ARGS.
check_world() {
  local name=$1 dir=$2 n=$3 r f i a
  local -a lrs nrs
  read -r -a lrs <<<"$4"
  read -r -a nrs <<<"$5"
  shift 5
  for ((r = 0; r < n; r++)); do
    f=$dir/rank_$r.rec
    [ -f "$f" ] || fail "$name: rank $r did not run
$(show "$name")"
    get() { sed -n "s/^$1=//p" "$f"; }
    [ "$(get rank)" = "$r" ] || fail "$name: $f says rank $(get rank)"
    [ "$(get world_size)" = "$n" ] || fail "$name: rank $r saw WORLD_SIZE=$(get world_size), expected $n"
    [ "$(get world_ok)" = 1 ] || fail "$name: rank $r did not meet its peers"
    if [ "${lrs[$r]}" != - ]; then
      [ "$(get local_rank)" = "${lrs[$r]}" ] || fail "$name: rank $r has LOCAL_RANK=$(get local_rank), expected ${lrs[$r]}"
    fi
    if [ "${nrs[$r]}" != - ]; then
      [ "$(get node_rank)" = "${nrs[$r]}" ] || fail "$name: rank $r has NODE_RANK=$(get node_rank), expected ${nrs[$r]}"
      [ "$(get group_rank)" = "${nrs[$r]}" ] || fail "$name: rank $r has GROUP_RANK=$(get group_rank)"
    fi
    [ "$(get argc)" = "$#" ] || fail "$name: rank $r got $(get argc) arguments, expected $#"
    i=0
    for a in "$@"; do
      [ "$(get "arg$i")" = "$(hexof "$a")" ] || fail "$name: rank $r argument $i is '$(get "arg$i" | xxd -r -p 2>/dev/null)' (hex $(get "arg$i")), expected '$a' (hex $(hexof "$a"))"
      i=$((i + 1))
    done
  done
  [ "$(find "$dir" -name 'rank_*.rec' | wc -l)" = "$n" ] || fail "$name: more than $n ranks ran"
  [ "$(wc -l <"$dir/world.txt")" = "$n" ] || fail "$name: rank 0 saw $(wc -l <"$dir/world.txt") ranks"
}

# Waits up to 10 s for every process carrying MARK (in argv) to be gone.
leftovers() { ps -eo pid=,args= | grep -F -- "$MARK" | grep -v -e grep -e 'ps -eo' || true; }
expect_no_leftovers() {
  local i left
  for i in $(seq 50); do
    left=$(leftovers)
    [ -z "$left" ] && return 0
    sleep 0.2
  done
  fail "$1: processes of the job are still running:
$left"
}

free_port() { "$HERE/daemons.sh" free-port 1; }

fresh_out() {  # fresh_out NAME: an empty directory for the probes' records
  rm -rf "${WORK:?}/$1"
  mkdir -p "$WORK/$1"
  echo "$WORK/$1"
}

# fault NAME RANK CMD...: CMD runs a job whose rank RANK SIGKILLs itself (the probe writes the
# time to OUT/failing_at). fmlaunch must exit non-zero within 10 s of that, name the rank, and
# leave no process of the job behind.
fault() {
  local name=$1 rank=$2 out end took
  shift 2
  out=${FAULT_OUT:?}
  run "$name" "$@"
  end=$(now)
  [ "$RC" != 0 ] || fail "$name: fmlaunch exited 0 although rank $rank was killed
$(show "$name")"
  [ "$RC" != 124 ] || fail "$name: fmlaunch hung after rank $rank was killed"
  [ -f "$out/failing_at" ] || fail "$name: the rank never got to fail
$(show "$name")"
  took=$(elapsed "$(cat "$out/failing_at")" "$end")
  awk -v t="$took" 'BEGIN { exit !(t < 10) }' || fail "$name: fmlaunch took ${took}s to exit after the rank died (limit 10 s)"
  expect_in "$name" err "rank $rank"
  expect_in "$name" err "SIGKILL"
  expect_no_leftovers "$name"
  ok "$name: exit $RC ${took}s after rank $rank was killed; rank named; nothing left running"
}
