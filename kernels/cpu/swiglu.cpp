// SwiGLU over the fused gate/up projection: out = silu(g) * u, silu(g) = g * sigmoid(g).
// Backward with s = sigmoid(g): du = dout * g * s,  dg = dout * u * s * (1 + g * (1 - s)).
#include <algorithm>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vec_math.h"

namespace fm::kernels::cpu {

namespace {
int64_t rows_per_block(int F) { return std::max<int64_t>(1, 16384 / std::max(F, 1)); }
}  // namespace

template <typename T>
void swiglu_forward(T* out, const T* gateup, int N, int F) {
  for_blocks(N, rows_per_block(F), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* g = gateup + n * 2 * F;
      const T* u = g + F;
      T* y = out + n * F;
#pragma omp simd
      for (int f = 0; f < F; ++f) y[f] = g[f] * sigmoid(g[f]) * u[f];
    }
  });
}

template <typename T>
void swiglu_backward(T* dgateup, const T* dout, const T* gateup, int N, int F) {
  for_blocks(N, rows_per_block(F), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* g = gateup + n * 2 * F;
      const T* u = g + F;
      const T* dy = dout + n * F;
      T* dg = dgateup + n * 2 * F;
      T* du = dg + F;
#pragma omp simd
      for (int f = 0; f < F; ++f) {
        const T sg = sigmoid(g[f]);
        const T silu = g[f] * sg;
        dg[f] = dy[f] * u[f] * sg * (T(1) + g[f] * (T(1) - sg));
        du[f] = dy[f] * silu;
      }
    }
  });
}

#define FM_INSTANTIATE(T)                                                  \
  template void swiglu_forward<T>(T*, const T*, int, int);                 \
  template void swiglu_backward<T>(T*, const T*, const T*, int, int);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
