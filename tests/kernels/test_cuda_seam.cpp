// The CUDA seam links (cudart, cuBLASLt, NCCL) and, where a GPU exists, works: a cuBLASLt handle
// and a kernel compiled for -Dgpu_archs run on device 0. Without a GPU it prints why and exits 77,
// which meson reports as a skip.
#include <cstdio>
#include <string>

#include "kernels/cuda/cuda_probe.h"

int main() {
  namespace cuda = fm::kernels::cuda;
  const cuda::LinkReport r = cuda::link_report();
  std::printf("compiled for: %s\n", cuda::compiled_archs().c_str());
  std::printf("NCCL %d, CUDA runtime %d, driver %d, cuBLASLt %zu\n", r.nccl_version, r.cuda_runtime_version,
              r.cuda_driver_version, r.cublaslt_version);
  if (r.nccl_version <= 0 || r.cuda_runtime_version <= 0 || r.cublaslt_version == 0) {
    std::printf("FAIL: a linked CUDA library did not report its version\n");
    return 1;
  }
  std::string why;
  if (!cuda::device_available(&why)) {
    std::printf("SKIP: no GPU (%s)\n", why.c_str());
    return 77;
  }
  std::printf("device 0: %s (sm_%d), %d device(s)\n", r.device_name.c_str(), r.compute_capability, r.device_count);
  if (!r.cublaslt_handle_ok || !r.kernel_ok) {
    std::printf("FAIL: %s\n", r.error.c_str());
    return 1;
  }
  std::printf("PASS: cuBLASLt handle and probe kernel ran on device 0\n");
  return 0;
}
