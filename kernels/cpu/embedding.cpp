// Token embedding lookup and its deterministic scatter-add backward.
#include <algorithm>
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {
// Channels per backward task: wide enough for whole cache lines, narrow enough for many tasks.
constexpr int kChannelBlock = 64;
}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max(C, 1));
  for_blocks(N, grain, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      std::memcpy(out + n * C, table + int64_t{tokens[n]} * C, sizeof(T) * C);
  });
}

// Each task owns a block of channels of every table row, and walks the tokens in order: a row that
// appears many times is summed in token order, the same way on every run.
template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int N, int C, int V) {
  for (int n = 0; n < N; ++n) FM_CHECK(tokens[n] >= 0 && tokens[n] < V, "embedding_backward: token out of range");
  for_blocks(C, kChannelBlock, [&](int64_t c0, int64_t c1) {
    const int64_t width = c1 - c0;
    for (int64_t n = 0; n < N; ++n) {
      T* dst = dtable + int64_t{tokens[n]} * C + c0;
      const T* src = dout + n * C + c0;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
    }
  });
}

// The table rows [r0, r1) alone (dtable_rows is (r1-r0, C)): tokens outside are skipped, the
// others added in token order as above, so a chunked backward sums every row the same way.
template <typename T>
void embedding_backward_rows(T* dtable_rows, const T* dout, const int32_t* tokens, int N, int C, int r0, int r1,
                             int V) {
  for (int n = 0; n < N; ++n) FM_CHECK(tokens[n] >= 0 && tokens[n] < V, "embedding_backward: token out of range");
  for_blocks(C, kChannelBlock, [&](int64_t c0, int64_t c1) {
    const int64_t width = c1 - c0;
    for (int64_t n = 0; n < N; ++n) {
      const int32_t t = tokens[n];
      if (t < r0 || t >= r1) continue;
      T* dst = dtable_rows + int64_t{t - r0} * C + c0;
      const T* src = dout + n * C + c0;
#pragma omp simd
      for (int64_t c = 0; c < width; ++c) dst[c] += src[c];
    }
  });
}

#define FM_INSTANTIATE(T)                                                                  \
  template void embedding_forward<T>(T*, const int32_t*, const T*, int, int);              \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int, int, int);        \
  template void embedding_backward_rows<T>(T*, const T*, const int32_t*, int, int, int, int, int);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
