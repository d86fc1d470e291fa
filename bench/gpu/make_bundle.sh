#!/usr/bin/env bash
# Prepares a GPU run from this machine: builds the GPU programs for sm_90 (H100/H200) and packs them,
# with the shared libraries a CUDA machine image may lack (fmt, oneTBB, OpenBLAS and its Fortran
# runtime, the CUDA runtime), into .gpu-bundle/ at the top of the checkout (ignored by git).
# cuBLAS, cuBLASLt and NCCL are left out (hundreds of MB): run_all.sh finds them on the GPU machine
# (CUDA toolkit or the nvidia-* Python wheels PyTorch brings). Then, in one device call:
#   run(command="bash bench/gpu/run_all.sh", carry=[".gpu-bundle"], timeout_s=600)
# The NCCL probe is not bundled (Open MPI needs its plugins): run_all.sh builds it where it can.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${FM_BUNDLE_BUILD:-$here/build-cuda-sm90}
bundle=$here/.gpu-bundle
targets=(tests/kernels/test_cuda_seam tests/cuda/test_cuda_ops tests/cuda/test_kernels_emulated
         tests/cuda/test_gemm_layout bench/gpu/bench_cuda_ops)

if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$here" -Dcuda=enabled -Dgpu_archs=90 >/dev/null
fi
ninja -C "$build" -j"${FM_JOBS:-2}" "${targets[@]}"

rm -rf "$bundle"
mkdir -p "$bundle/bin" "$bundle/lib"
for t in "${targets[@]}"; do cp "$build/$t" "$bundle/bin/"; done
# Every shared library the programs load, except the C runtime (present everywhere, and bound to the
# loader), the GPU driver, and the large CUDA libraries taken from the GPU machine.
skip='^(libc|libm|libpthread|libdl|librt|ld-linux.*|libgcc_s|libstdc\+\+|libcuda|libcublas|libcublasLt|libnccl)\.so'
for t in "$bundle"/bin/*; do
  ldd "$t" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  if ! [[ $name =~ $skip ]]; then cp -L "$lib" "$bundle/lib/$name"; fi
done
# Keep git from listing the bundle (the local exclude file, not a tracked one).
exclude=$(git -C "$here" rev-parse --git-path info/exclude 2>/dev/null || true)
if [ -n "$exclude" ]; then
  case $exclude in /*) ;; *) exclude=$here/$exclude ;; esac
  mkdir -p "$(dirname "$exclude")"
  grep -qsx '/.gpu-bundle/' "$exclude" || echo '/.gpu-bundle/' >>"$exclude"
fi
size=$(du -sm "$bundle" | cut -f1)
echo "bundle: $bundle, ${size} MiB: $(ls "$bundle/bin" | tr '\n' ' ')"
echo "libraries: $(ls "$bundle/lib" | tr '\n' ' ')"
if [ "$size" -gt 60 ]; then
  echo "warning: the bundle is over 60 MiB; the device tool carries at most 64 MiB with the checkout" >&2
fi
