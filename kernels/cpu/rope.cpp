// Rotary position embedding, rotate-half convention: for each query and key head, with
// c = cos_sin[t][i], s = cos_sin[t][D/2 + i] and the halves x1 = x[i], x2 = x[D/2 + i],
//   forward:  y1 = x1 c - x2 s,  y2 = x2 c + x1 s
//   backward: dx1 = dy1 c + dy2 s,  dx2 = dy2 c - dy1 s   (the transpose of the rotation)
#include <algorithm>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"

namespace fm::kernels::cpu {

namespace {

template <typename T, bool kInverse>
void rope_apply(T* qkv, const T* cos_sin, const AttentionShape& s) {
  const int64_t N = int64_t{s.B} * s.T;
  const int W = s.qkv_width();
  const int heads = s.H + s.Hkv;  // query heads then key heads are contiguous in each row
  const int half = s.D / 2;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max(heads * s.D, 1));
  for_blocks(N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const T* cs = cos_sin + (n % s.T) * s.D;
      const T* cosv = cs;
      const T* sinv = cs + half;
      for (int h = 0; h < heads; ++h) {
        T* x1 = qkv + n * W + int64_t{h} * s.D;
        T* x2 = x1 + half;
#pragma omp simd
        for (int i = 0; i < half; ++i) {
          const T a = x1[i], b = x2[i];
          if constexpr (kInverse) {
            x1[i] = a * cosv[i] + b * sinv[i];
            x2[i] = b * cosv[i] - a * sinv[i];
          } else {
            x1[i] = a * cosv[i] - b * sinv[i];
            x2[i] = b * cosv[i] + a * sinv[i];
          }
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void rope_forward(T* qkv, const T* cos_sin, const AttentionShape& s) {
  rope_apply<T, false>(qkv, cos_sin, s);
}

template <typename T>
void rope_backward(T* dqkv, const T* cos_sin, const AttentionShape& s) {
  rope_apply<T, true>(dqkv, cos_sin, s);
}

#define FM_INSTANTIATE(T)                                                     \
  template void rope_forward<T>(T*, const T*, const AttentionShape&);         \
  template void rope_backward<T>(T*, const T*, const AttentionShape&);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
