// Launchers of the elementwise kernels (elementwise_kernels.cuh has the design).
#include "kernels/cuda/elementwise_kernels.cuh"
#include "runtime/base/error.h"

namespace fm::kernels::cuda {

namespace {

bool vec_ok(std::initializer_list<Ref> refs, int64_t inner) {
  if (inner % 8 != 0) return false;
  for (const Ref& r : refs)
    if (r.p && !aligned16(r.p)) return false;
  return true;
}

template <typename Op>
void launch_map(cudaStream_t s, Ref out, Ref a, Ref b, int64_t n, Op op, const char* name) {
  if (n <= 0) return;
  const bool vec = vec_ok({out, a, b}, 8);  // flat arrays: alignment of the bases is enough
  map_kernel<<<grid_for(vec ? (n + 7) / 8 : n, kElementwiseThreads), kElementwiseThreads, 0, s>>>(out, a, b, n, op, vec);
  check_launch(name);
}

unsigned sum_blocks(int64_t n) {
  const int64_t per_block = int64_t{kSumThreads} * 16;
  int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kSumBlocksMax ? kSumBlocksMax : b));
}

}  // namespace

void launch_convert(cudaStream_t s, Ref dst, Ref src, int64_t n) {
  launch_map(s, dst, src, Ref{}, n, CopyOp{}, "convert");
}

void launch_add(cudaStream_t s, Ref out, Ref a, Ref b, int64_t n) { launch_map(s, out, a, b, n, AddOp{}, "add"); }

void launch_scale(cudaStream_t s, Ref x, float factor, int64_t n) {
  launch_map(s, x, x, Ref{}, n, ScaleOp{factor}, "scale");
}

void launch_sum_squares(cudaStream_t s, Ref x, int64_t n, double* result, Scratch& scratch) {
  if (n <= 0) {
    check_cuda(cudaMemsetAsync(result, 0, sizeof(double), s), "sum_squares: memset");
    return;
  }
  const unsigned blocks = sum_blocks(n);
  auto* partial = static_cast<double*>(scratch.get(blocks * sizeof(double), s));
  sum_squares_partial<<<blocks, kSumThreads, 0, s>>>(x, n, partial, vec_ok({x}, 8));
  check_launch("sum_squares_partial");
  sum_partials<<<1, kSumThreads, 0, s>>>(partial, static_cast<int>(blocks), result);
  check_launch("sum_partials");
}

void launch_swiglu_forward(cudaStream_t s, Ref out, Ref gateup, int N, int F) {
  if (N <= 0 || F <= 0) return;
  const bool vec = vec_ok({out, gateup}, F);
  const int64_t items = int64_t{N} * (vec ? F / 8 : F);
  swiglu_forward_kernel<<<grid_for(items, kElementwiseThreads), kElementwiseThreads, 0, s>>>(out, gateup, N, F, vec);
  check_launch("swiglu_forward");
}

void launch_swiglu_backward(cudaStream_t s, Ref dgateup, Ref dout, Ref gateup, int N, int F) {
  if (N <= 0 || F <= 0) return;
  const bool vec = vec_ok({dgateup, dout, gateup}, F);
  const int64_t items = int64_t{N} * (vec ? F / 8 : F);
  swiglu_backward_kernel<<<grid_for(items, kElementwiseThreads), kElementwiseThreads, 0, s>>>(dgateup, dout, gateup, N, F, vec);
  check_launch("swiglu_backward");
}

void launch_rope(cudaStream_t s, Ref qkv, Ref cos_sin, const AttentionShape& shape, bool inverse) {
  const int N = shape.B * shape.T;
  const int heads = shape.H + shape.Hkv;
  const int64_t items = int64_t{N} * heads * (shape.D / 2);
  if (items <= 0) return;
  rope_kernel<<<grid_for(items, kElementwiseThreads), kElementwiseThreads, 0, s>>>(qkv, cos_sin, N, shape.T, heads, shape.D,
                                                              shape.qkv_width(), inverse);
  check_launch(inverse ? "rope_backward" : "rope_forward");
}

void launch_embedding_forward(cudaStream_t s, Ref out, const int32_t* tokens, Ref table, int N, int C) {
  if (N <= 0 || C <= 0) return;
  const bool vec = vec_ok({out, table}, C);
  const int64_t items = int64_t{N} * (vec ? C / 8 : C);
  embedding_forward_kernel<<<grid_for(items, kElementwiseThreads), kElementwiseThreads, 0, s>>>(out, tokens, table, N, C, vec);
  check_launch("embedding_forward");
}

void launch_adam(cudaStream_t s, Ref master, Ref grad, Ref m, Ref v, Ref param_out, int64_t n, const AdamStep& step) {
  FM_CHECK(master.dtype == kF32 && m.dtype == kF32 && v.dtype == kF32,
           "CudaOps::adam_update: master, m and v must be f32");
  if (n <= 0) return;
  adam_kernel<<<grid_for(n, kElementwiseThreads), kElementwiseThreads, 0, s>>>(static_cast<float*>(master.p), grad,
                                                         static_cast<float*>(m.p), static_cast<float*>(v.p),
                                                         param_out, n, adam_coefficients(step));
  check_launch("adam_update");
}

}  // namespace fm::kernels::cuda
