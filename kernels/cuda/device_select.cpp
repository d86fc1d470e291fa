#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cstdlib>
#include <string_view>

#include "kernels/cuda/cuda_ops.h"
#include "runtime/base/error.h"

namespace fm::kernels::cuda {

int select_cuda_device(int local_rank, bool allow_sharing) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw RuntimeFault(fmt::format("no usable CUDA device: {} ({})", cudaGetErrorName(e), cudaGetErrorString(e)));
  }
  if (count == 0) throw RuntimeFault("no CUDA device is visible (check CUDA_VISIBLE_DEVICES)");
  if (local_rank < 0) return 0;
  // A launcher (fmlaunch, Slurm's --gpus-per-task) that gives each rank exactly one GPU leaves it
  // alone in CUDA_VISIBLE_DEVICES: that GPU is the rank's, whatever its local rank.
  const char* only = std::getenv("CUDA_VISIBLE_DEVICES");
  if (count == 1 && only && *only && std::string_view(only).find(',') == std::string_view::npos) return 0;
  if (local_rank < count) return local_rank;
  if (allow_sharing) return local_rank % count;
  const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
  throw InputError("LOCAL_RANK",
                   fmt::format("local rank {} has no GPU of its own: {} GPU{} visible on this host{}", local_rank,
                               count, count == 1 ? " is" : "s are",
                               visible ? fmt::format(" (CUDA_VISIBLE_DEVICES={})", visible) : std::string()),
                   "start at most one rank per GPU on each node (e.g. --num_gpus / --nproc_per_node equal to the "
                   "GPU count), or widen CUDA_VISIBLE_DEVICES");
}

}  // namespace fm::kernels::cuda
