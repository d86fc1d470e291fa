#!/usr/bin/env bash
# Every GPU check and benchmark in one call on a GPU machine (the device tool: run with timeout_s=600,
# carry [".gpu-bundle"] when bench/gpu/make_bundle.sh prepared one). Results go to $OUT (the device
# tool's output folder), or ./gpu-results: at most 8 files, as the device tool returns them:
#   summary.txt    one line per phase and per test: exit code, seconds
#   env.log        nvidia-smi, nvcc, python packages, the library paths used
#   build.log      meson + ninja of the GPU targets (-Dgpu_archs=90), or why the bundle was used
#   tests.log      CUDA seam, GEMM layout, emulated kernels, every op against the CPU, NCCL (>= 2 GPUs)
#   ops.log, ops.jsonl         bench_cuda_ops (TinyLlama-1.1B shapes)
#   compare.log, compare.json  compare_torch.py: torch sdpa, transformers eager/compiled, MFU
# Phases run in order within a total budget (FM_GPU_BUDGET seconds, default 560, under the tool's 600);
# a phase gets at most its own limit and what is left; one that fails is recorded and the next runs.
# The exit code is 1 when a test failed (a skip, exit 77, is not a failure), else 0.
# Options (environment): FM_OURS_METRICS=path to fmtrain's metrics.jsonl of a GPU run (our whole-model
# number); FM_GPU_USE_BUNDLE=1 to skip building; FM_GPU_PHASES="build tests bench compare" to choose.
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$here/gpu-results}
mkdir -p "$out"
budget=${FM_GPU_BUDGET:-560}
phases=${FM_GPU_PHASES:-build tests bench compare}
summary=$out/summary.txt
: >"$summary"
failed=0
note() { echo "$*" | tee -a "$summary"; }
left() { echo $((budget - SECONDS)); }
# limit PHASE_SECONDS: the phase's own limit or what the budget has left, whichever is smaller (at
# least 1: `timeout 0` would mean no limit at all).
limit() {
  local l
  l=$(left)
  [ "$1" -lt "$l" ] && l=$1
  [ "$l" -lt 1 ] && l=1
  echo "$l"
}
wants() { [[ " $phases " == *" $1 "* ]]; }

cd "$here" || exit 1

# ---- environment --------------------------------------------------------------------------------
{
  date -u
  nvidia-smi || echo "nvidia-smi failed"
  nvcc --version 2>&1 | tail -2
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  command -v meson ninja mpirun
} >"$out/env.log" 2>&1
gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | wc -l)
note "gpus: $gpus"

# The large CUDA libraries (cuBLAS, cuBLASLt, NCCL, the runtime) wherever this machine has them.
libdirs=$(find /usr/local/cuda*/lib64 /usr/lib/x86_64-linux-gnu \
            $(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null) \
            \( -name 'libcublasLt.so.13*' -o -name 'libnccl.so.2*' -o -name 'libcudart.so.13*' \) \
            -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')

# ---- build ----------------------------------------------------------------------------------------
build=$here/build-cuda-sm90
bin=""
if wants build && [ "${FM_GPU_USE_BUNDLE:-0}" != 1 ]; then
  t0=$SECONDS
  targets="tests/kernels/test_cuda_seam tests/cuda/test_cuda_ops tests/cuda/test_kernels_emulated
           tests/cuda/test_gemm_layout tests/cuda/nccl_comm_probe bench/gpu/bench_cuda_ops"
  if timeout -s KILL "$(limit 300)" bash -c "
       { [ -f '$build/build.ninja' ] || meson setup '$build' -Dcuda=enabled -Dgpu_archs=90; } &&
       ninja -C '$build' -j$(nproc) $(echo $targets)" >"$out/build.log" 2>&1; then
    bin=$build
    note "build: ok ($((SECONDS - t0)) s)"
  else
    note "build: failed ($((SECONDS - t0)) s), see build.log"
  fi
fi
if [ -z "$bin" ] && [ -d "$here/.gpu-bundle/bin" ]; then
  echo "using the prebuilt bundle .gpu-bundle (bench/gpu/make_bundle.sh)" >>"$out/build.log"
  note "build: using .gpu-bundle"
  bin=bundle
fi
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:-}"
if [ "$bin" = bundle ]; then export LD_LIBRARY_PATH="$here/.gpu-bundle/lib:$LD_LIBRARY_PATH"; fi
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >>"$out/env.log"
program() {  # program PATH-IN-BUILD -> the executable to run, or nothing
  if [ "$bin" = bundle ]; then
    [ -x "$here/.gpu-bundle/bin/$(basename "$1")" ] && echo "$here/.gpu-bundle/bin/$(basename "$1")"
  elif [ -n "$bin" ]; then
    [ -x "$bin/$1" ] && echo "$bin/$1"
  fi
}
if [ -z "$bin" ]; then
  note "no GPU programs: neither a build nor .gpu-bundle"
  exit 1
fi

# ---- tests ----------------------------------------------------------------------------------------
run_test() {  # run_test NAME SECONDS COMMAND...
  local name=$1 secs=$2 rc=0 t0=$SECONDS
  shift 2
  if [ "$(left)" -le 5 ]; then
    note "test $name: not run (budget spent)"
    return
  fi
  if [ -z "$1" ]; then
    note "test $name: FAIL, not built"
    failed=1
    return
  fi
  echo "==== $name: $*" >>"$out/tests.log"
  timeout -s KILL "$(limit "$secs")" "$@" >>"$out/tests.log" 2>&1 || rc=$?
  case $rc in
    0) note "test $name: pass ($((SECONDS - t0)) s)" ;;
    77) note "test $name: skipped ($((SECONDS - t0)) s)" ;;
    *) note "test $name: FAIL, exit $rc ($((SECONDS - t0)) s)"; failed=1 ;;
  esac
}
if wants tests; then
  : >"$out/tests.log"
  run_test cuda_seam 60 "$(program tests/kernels/test_cuda_seam)"
  run_test gemm_layout 60 "$(program tests/cuda/test_gemm_layout)"
  run_test cuda_ops 240 "$(program tests/cuda/test_cuda_ops)"
  run_test kernels_emulated 120 "$(program tests/cuda/test_kernels_emulated)"
  probe=$(program tests/cuda/nccl_comm_probe)
  if [ "$gpus" -ge 2 ] && [ -n "$probe" ] && command -v mpirun >/dev/null; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      run_test nccl_comm 240 bash "$here/tests/cuda/nccl_tests.sh" "$probe"
  else
    note "test nccl_comm: skipped ($gpus GPU(s), probe ${probe:-not built}, mpirun $(command -v mpirun || echo missing))"
  fi
fi

# ---- benchmarks -----------------------------------------------------------------------------------
if wants bench; then
  t0=$SECONDS
  rc=0
  bench=$(program bench/gpu/bench_cuda_ops)
  if [ -n "$bench" ]; then
    timeout -s KILL "$(limit 180)" "$bench" --json "$out/ops.jsonl" >"$out/ops.log" 2>&1 || rc=$?
  else
    rc=127
  fi
  note "bench_cuda_ops: exit $rc ($((SECONDS - t0)) s)"
fi
if wants compare; then
  t0=$SECONDS
  rc=0
  extra=()
  [ -f "$out/ops.jsonl" ] && extra+=(--ours-ops "$out/ops.jsonl")
  [ -n "${FM_OURS_METRICS:-}" ] && extra+=(--ours-metrics "$FM_OURS_METRICS")
  # torch.compile needs a few minutes of its own: leave it out when the budget is short.
  [ "$(left)" -lt 240 ] && extra+=(--no-compile)
  PYTHONUNBUFFERED=1 timeout -s KILL "$(limit 330)" python3 "$here/bench/gpu/compare_torch.py" \
    --config "$here/configs/models/tinyllama-1.1b.json" --json "$out/compare.json" "${extra[@]}" \
    >"$out/compare.log" 2>&1 || rc=$?
  note "compare_torch: exit $rc ($((SECONDS - t0)) s)"
fi
note "total: $SECONDS s"
exit $failed
