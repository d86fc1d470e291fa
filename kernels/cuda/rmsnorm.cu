// Launchers of the RMSNorm kernels (rmsnorm_kernels.cuh has the design).
#include "kernels/cuda/rmsnorm_kernels.cuh"

namespace fm::kernels::cuda {

namespace {

bool row_vec(std::initializer_list<Ref> refs, int C) {
  if (C % 8 != 0) return false;
  for (const Ref& r : refs)
    if (!aligned16(r.p)) return false;
  return true;
}

}  // namespace

void launch_rmsnorm_forward(cudaStream_t s, Ref out, Ref rstd, Ref x, Ref w, int N, int C, float eps) {
  if (N <= 0 || C <= 0) return;
  const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  if (row_vec({out, x, w}, C))
    rmsnorm_forward_kernel<8><<<blocks, kRowThreads, 0, s>>>(out, rstd, x, w, N, C, eps);
  else
    rmsnorm_forward_kernel<1><<<blocks, kRowThreads, 0, s>>>(out, rstd, x, w, N, C, eps);
  check_launch("rmsnorm_forward");
}

void launch_rmsnorm_backward(cudaStream_t s, Ref dx, Ref dw, Ref dout, Ref x, Ref w, Ref rstd, int N, int C,
                             bool accumulate_dx, Scratch& scratch) {
  if (N <= 0 || C <= 0) return;
  const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
  if (row_vec({dx, dout, x, w}, C))
    rmsnorm_backward_dx_kernel<8><<<blocks, kRowThreads, 0, s>>>(dx, dout, x, w, rstd, N, C, accumulate_dx);
  else
    rmsnorm_backward_dx_kernel<1><<<blocks, kRowThreads, 0, s>>>(dx, dout, x, w, rstd, N, C, accumulate_dx);
  check_launch("rmsnorm_backward_dx");

  // At most 256 chunks of at least 32 rows: a fixed function of N.
  int rows_per_chunk = (N + 255) / 256;
  if (rows_per_chunk < 32) rows_per_chunk = 32;
  const int chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  auto* partial = static_cast<float*>(scratch.get(sizeof(float) * size_t(chunks) * size_t(C), s));
  constexpr int kColThreads = 256;
  const dim3 grid((C + kColThreads - 1) / kColThreads, chunks);
  rmsnorm_dw_partial_kernel<<<grid, kColThreads, 0, s>>>(partial, dout, x, rstd, N, C, rows_per_chunk);
  check_launch("rmsnorm_dw_partial");
  rmsnorm_dw_finish_kernel<<<(C + kColThreads - 1) / kColThreads, kColThreads, 0, s>>>(dw, partial, chunks, C);
  check_launch("rmsnorm_dw_finish");
}

}  // namespace fm::kernels::cuda
