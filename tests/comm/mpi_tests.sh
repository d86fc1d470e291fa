# The communicators under Open MPI's mpirun: collectives, point-to-point, groups and topologies on
# 1, 2 and 4 ranks; timeouts that name the missing rank; a rank killed mid-collective ends the job.
set -u
probe=$1
tag="comm-mpi-$$"
fail() {
  echo "FAIL: $*"
  exit 1
}
run_mpi() {  # run_mpi SECONDS N ARGS... -> output in $out, exit code in $rc
  local limit=$1 n=$2
  shift 2
  rc=0
  out=$(timeout -s KILL "$limit" mpirun --oversubscribe -np "$n" "$probe" --tag "$tag" "$@" 2>&1) || rc=$?
}
expect_in() { grep -qF -- "$1" <<<"$out" || { echo "$out"; fail "expected: $1"; }; }

for n in 1 2 4; do
  run_mpi 120 "$n" all --backend mpi --pipe-sizes 1,2,4
  [ "$rc" = 0 ] || { echo "$out"; fail "all checks on $n ranks exited $rc"; }
  [ "$(grep -c 'all checks passed (mpi)' <<<"$out")" = "$n" ] || { echo "$out"; fail "not every rank of $n passed"; }
  expect_in "mpi backend, $n rank"
  echo "ok: collectives, p2p and groups on $n MPI ranks"
done
run_mpi 60 4 info
expect_in "MPI_THREAD_"
expect_in "local rank 3 of 4"

# Without mpirun: a one-process world, with and without MPI initialised.
out=$("$probe" all --pipe-sizes 1 2>&1) || fail "plain run: $out"
expect_in "all checks passed (single)"
out=$("$probe" all --backend mpi 2>&1) || fail "MPI singleton: $out"
expect_in "all checks passed (mpi)"
echo "ok: one process without mpirun (single and MPI singleton)"

run_mpi 60 2 timeout-recv --timeout 2
[ "$rc" != 0 ] || fail "a recv that never completes must fail"
expect_in "rank 0: recv from rank 1 (world) timed out after 2 s — rank 1 is probably dead or stuck"
echo "ok: recv timeout names the silent peer"

run_mpi 60 4 timeout-collective --timeout 2
[ "$rc" != 0 ] || fail "an all_reduce without rank 1 must fail"
expect_in "all_reduce of 10 f32 (world, ranks 0,1,2,3) timed out after 2 s waiting for ranks"
expect_in "or did not call it"
echo "ok: collective timeout names the group and the candidates"

# Liveness: rank 2 SIGKILLs itself between all_reduces while the others wait for it. The comm
# timeout is 120 s, so ending within the 30 s limit means mpirun's own failure detection did it.
run_mpi 30 4 liveness --victim 2 --timeout 120
[ "$rc" != 0 ] || fail "the job survived a killed rank"
expect_in "killing itself (SIGKILL)"
expect_in "mpirun noticed that process rank 2"
expect_in "exited on signal 9"
sleep 0.5
left=$(pgrep -f -- "--tag $tag" || true)
[ -z "$left" ] || fail "processes left running: $left"
echo "ok: a killed rank ends the whole MPI job, naming it; nothing left running"
