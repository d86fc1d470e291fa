// Elementwise ops and the sum of squares (for gradient norms), over fixed blocks.
#include <algorithm>
#include <vector>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/row_kernels.h"

namespace fm::kernels::cpu {

namespace {
constexpr int64_t kGrain = 32768;
}  // namespace

template <typename T>
void add(T* out, const T* a, const T* b, int64_t n) {
  for_blocks(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) out[i] = a[i] + b[i];
  });
}

template <typename T>
void accumulate(T* acc, const T* x, int64_t n) {
  for_blocks(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) acc[i] += x[i];
  });
}

template <typename T>
void scale(T* x, T s, int64_t n) {
  for_blocks(n, kGrain, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) x[i] *= s;
  });
}

template <typename T>
double sum_squares(const T* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t blocks = (n + kGrain - 1) / kGrain;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  for_blocks(n, kGrain, [&](int64_t i0, int64_t i1) {
    partial[i0 / kGrain] = row_sum_squares_f64(x + i0, i1 - i0);
  });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

#define FM_INSTANTIATE(T)                                         \
  template void add<T>(T*, const T*, const T*, int64_t);         \
  template void accumulate<T>(T*, const T*, int64_t);            \
  template void scale<T>(T*, T, int64_t);                         \
  template double sum_squares<T>(const T*, int64_t);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
