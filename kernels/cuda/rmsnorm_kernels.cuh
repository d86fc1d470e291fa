// RMSNorm forward and backward kernels (rmsnorm.cu launches them), y = (x * rstd) * w with rstd = 1 / sqrt(mean(x^2) + eps).
//
// Forward and the dx part of backward: one warp per row, 8 rows per block, lanes stride the row in
// chunks of 8 elements (16-byte accesses when aligned); the row's second pass hits L1/L2.
// Backward, per row with g = dout, S = sum_j w_j g_j x_j:
//   dx_i = rstd * w_i * g_i - rstd^3 * S / C * x_i,   dw_i += sum over rows of g_i x_i rstd.
// dw without atomics: rows are cut into chunks of a size fixed by N; one thread per (column, chunk)
// sums its chunk's rows in order into a partial, then one thread per column adds the partials in
// chunk order to dw. The same shape always sums in the same order.
#pragma once

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

// Device code in an unnamed namespace: each file that includes it (the launcher, the CPU emulation
// test) gets its own copy.
namespace {

constexpr int kRowsPerBlock = 8;
constexpr int kRowThreads = kRowsPerBlock * 32;

// Calls f(c) for the chunks of kW elements of a row that this lane handles.
template <int kW, typename F>
__device__ __forceinline__ void for_row(int C, F&& f) {
  const int lane = threadIdx.x & 31;
  for (int c = lane * kW; c < C; c += 32 * kW) f(c);
}

// kW = 8: 16-byte accesses (C % 8 == 0, aligned rows); kW = 1: scalar.
template <int kW>
__global__ void rmsnorm_forward_kernel(Ref out, Ref rstd, Ref x, Ref w, int N, int C, float eps) {
  const int64_t n = int64_t{blockIdx.x} * kRowsPerBlock + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t base = n * C;
  float ss = 0;
  for_row<kW>(C, [&](int c) {
    float v[8];
    load_chunk<kW>(x, base + c, v);
#pragma unroll
    for (int k = 0; k < kW; ++k) ss += v[k] * v[k];
  });
  ss = warp_sum(ss);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if ((threadIdx.x & 31) == 0) store(rstd, n, r);
  for_row<kW>(C, [&](int c) {
    float v[8], wv[8];
    load_chunk<kW>(x, base + c, v);
    load_chunk<kW>(w, c, wv);
#pragma unroll
    for (int k = 0; k < kW; ++k) v[k] = (v[k] * r) * wv[k];
    store_chunk<kW>(out, base + c, v);
  });
}

template <int kW>
__global__ void rmsnorm_backward_dx_kernel(Ref dx, Ref dout, Ref x, Ref w, Ref rstd, int N, int C, bool accumulate) {
  const int64_t n = int64_t{blockIdx.x} * kRowsPerBlock + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t base = n * C;
  const float r = load(rstd, n);
  float s = 0;
  for_row<kW>(C, [&](int c) {
    float g[8], xv[8], wv[8];
    load_chunk<kW>(dout, base + c, g);
    load_chunk<kW>(x, base + c, xv);
    load_chunk<kW>(w, c, wv);
#pragma unroll
    for (int k = 0; k < kW; ++k) s += wv[k] * g[k] * xv[k];
  });
  s = warp_sum(s);
  const float kx = r * r * r * s / static_cast<float>(C);
  for_row<kW>(C, [&](int c) {
    float g[8], xv[8], wv[8], d[8];
    load_chunk<kW>(dout, base + c, g);
    load_chunk<kW>(x, base + c, xv);
    load_chunk<kW>(w, c, wv);
    if (accumulate) load_chunk<kW>(dx, base + c, d);
#pragma unroll
    for (int k = 0; k < kW; ++k) {
      const float v = r * wv[k] * g[k] - kx * xv[k];
      d[k] = accumulate ? d[k] + v : v;
    }
    store_chunk<kW>(dx, base + c, d);
  });
}

// partial[chunk * C + c] = sum over rows of the chunk of dout[n][c] * x[n][c] * rstd[n].
__global__ void rmsnorm_dw_partial_kernel(float* partial, Ref dout, Ref x, Ref rstd, int N, int C, int rows_per_chunk) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  const int chunk = blockIdx.y;
  const int64_t n0 = int64_t{chunk} * rows_per_chunk;
  const int64_t n1 = n0 + rows_per_chunk < N ? n0 + rows_per_chunk : N;
  float acc = 0;
  for (int64_t n = n0; n < n1; ++n) acc += load(dout, n * C + c) * load(x, n * C + c) * load(rstd, n);
  partial[int64_t{chunk} * C + c] = acc;
}

__global__ void rmsnorm_dw_finish_kernel(Ref dw, const float* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0;
  for (int k = 0; k < chunks; ++k) acc += partial[int64_t{k} * C + c];
  store(dw, c, load(dw, c) + acc);
}

}  // namespace

}  // namespace fm::kernels::cuda
