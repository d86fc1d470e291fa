// RMSNorm, y = x * rstd * w with rstd = 1 / sqrt(mean(x^2) + eps), in the operation order of the
// Hugging Face LLaMA module (normalise, then scale by the weight).
//
// Backward, per row with g = dout and S = sum_j w_j g_j x_j:
//   dx_i = rstd * w_i * g_i - rstd^3 * x_i * S / C,    dw_i += g_i * x_i * rstd.
// dw is reduced over rows in fixed row blocks (partial sums per block, then blocks in order).
#include <algorithm>
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/row_kernels.h"

namespace fm::kernels::cpu {

namespace {
// Rows per task: about 16K elements of work.
int64_t rows_per_block(int C) { return std::max<int64_t>(1, 16384 / std::max(C, 1)); }
}  // namespace

template <typename T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int C, T eps) {
  for_blocks(N, rows_per_block(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* xr = x + n * C;
      T* yr = out + n * C;
      const T ss = row_sum_squares(xr, C);
      const T r = T(1) / std::sqrt(ss / T(C) + eps);
      rstd[n] = r;
#pragma omp simd
      for (int c = 0; c < C; ++c) yr[c] = (xr[c] * r) * w[c];
    }
  });
}

template <typename T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int C,
                      bool accumulate_dx) {
  const int64_t grain = rows_per_block(C);
  const int64_t blocks = (int64_t{N} + grain - 1) / grain;
  // Per-block partial dw, in the calling thread's reusable scratch (a fresh allocation of this size
  // would page-fault on every call).
  T* dw_partial = thread_scratch<T, kScratchPartials>(static_cast<size_t>(blocks) * C);
  std::fill(dw_partial, dw_partial + blocks * C, T(0));
  for_blocks(N, grain, [&](int64_t n0, int64_t n1) {
    T* dwp = dw_partial + (n0 / grain) * C;
    for (int64_t n = n0; n < n1; ++n) {
      const T* xr = x + n * C;
      const T* gr = dout + n * C;
      T* dxr = dx + n * C;
      const T r = rstd[n];
      const T s = row_dot3(w, gr, xr, C);
      const T k = r * r * r * s / T(C);
      if (accumulate_dx) {
#pragma omp simd
        for (int c = 0; c < C; ++c) dxr[c] += r * w[c] * gr[c] - k * xr[c];
      } else {
#pragma omp simd
        for (int c = 0; c < C; ++c) dxr[c] = r * w[c] * gr[c] - k * xr[c];
      }
#pragma omp simd
      for (int c = 0; c < C; ++c) dwp[c] += gr[c] * xr[c] * r;
    }
  });
  for (int64_t b = 0; b < blocks; ++b) {
    const T* dwp = dw_partial + b * C;
#pragma omp simd
    for (int c = 0; c < C; ++c) dw[c] += dwp[c];
  }
}

#define FM_INSTANTIATE(T)                                                                          \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int, int, T);                      \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int, int, bool);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
