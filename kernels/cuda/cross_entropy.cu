// Launcher of the cross-entropy kernels (cross_entropy_kernels.cuh has the design).
#include "kernels/cuda/cross_entropy_kernels.cuh"

namespace fm::kernels::cuda {

void launch_cross_entropy(cudaStream_t s, Ref losses, Ref dlogits, Ref logits, const int32_t* targets, int N, int V,
                          float grad_scale, CrossEntropyResult* result, Scratch& scratch) {
  if (N <= 0) {
    check_cuda(cudaMemsetAsync(result, 0, sizeof(CrossEntropyResult), s), "cross_entropy: memset");
    return;
  }
  Carve carve;
  const size_t rows_at = carve.add(sizeof(double) * size_t(N));
  const size_t bad_at = carve.add(sizeof(int));
  auto* base = static_cast<char*>(scratch.get(carve.total(), s));
  auto* row_loss = reinterpret_cast<double*>(base + rows_at);
  auto* bad = reinterpret_cast<int*>(base + bad_at);
  check_cuda(cudaMemsetAsync(bad, 0, sizeof(int), s), "cross_entropy: memset");
  const bool vec = V % 8 == 0 && aligned16(logits.p) && (!dlogits.p || aligned16(dlogits.p));
  if (vec)
    cross_entropy_kernel<8><<<N, kCrossEntropyThreads, 0, s>>>(losses, dlogits, logits, targets, V, grad_scale, row_loss, bad);
  else
    cross_entropy_kernel<1><<<N, kCrossEntropyThreads, 0, s>>>(losses, dlogits, logits, targets, V, grad_scale, row_loss, bad);
  check_launch("cross_entropy");
  sum_rows_kernel<<<1, 1024, 0, s>>>(row_loss, N, bad, result);
  check_launch("cross_entropy: sum");
}

}  // namespace fm::kernels::cuda
