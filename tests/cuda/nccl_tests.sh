# The NCCL communicator on two GPUs under mpirun (nccl_comm_probe). Skipped (exit 77, "SKIP: ...")
# where fewer than two GPUs are visible: without any, with the CUDA error that says why.
set -u
probe=$1
line=$("$probe" --count-gpus) || { echo "FAIL: $probe --count-gpus exited $?"; exit 1; }
read -r _ gpus reason <<<"$line"
if [ "$gpus" = 0 ]; then
  echo "SKIP: no GPU ($reason)"
  exit 77
fi
if [ "$gpus" -lt 2 ]; then
  echo "SKIP: the NCCL test needs 2 GPUs, $gpus visible"
  exit 77
fi
rc=0
out=$(timeout -s KILL 240 mpirun -np 2 "$probe" 2>&1) || rc=$?
echo "$out"
[ "$rc" = 0 ] || { echo "FAIL: mpirun -np 2 $probe exited $rc"; exit 1; }
[ "$(grep -c 'nccl checks passed' <<<"$out")" = 2 ] || { echo "FAIL: not every rank passed"; exit 1; }
echo "ok: NCCL collectives, point-to-point, groups and timeouts on 2 GPUs"
