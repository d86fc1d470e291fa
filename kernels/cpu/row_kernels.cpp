#include "kernels/cpu/row_kernels.h"

#include <cstring>
#include <limits>

#include "kernels/cpu/vec_math.h"

namespace fm::kernels::cpu {

namespace {

// Accumulators per reduction (16 floats or 8 doubles, two AVX vectors) hide the add latency.
template <typename T>
constexpr int kAcc = 64 / sizeof(T);

// Sums acc[0..kAcc) pairwise in a fixed order.
template <typename T>
T combine(T* acc) {
  for (int width = kAcc<T> / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  return acc[0];
}

}  // namespace

// GCC vector extensions: the plain-array form of a max reduction stays scalar.
template <typename T>
T row_max(const T* x, int64_t n) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int kLanes = 32 / sizeof(T);
  constexpr T kLow = -std::numeric_limits<T>::infinity();
  V a0, a1;
  for (int l = 0; l < kLanes; ++l) a0[l] = a1[l] = kLow;
  int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    V u, v;
    std::memcpy(&u, x + i, sizeof(V));
    std::memcpy(&v, x + i + kLanes, sizeof(V));
    a0 = u > a0 ? u : a0;
    a1 = v > a1 ? v : a1;
  }
  a0 = a1 > a0 ? a1 : a0;
  T m = kLow;
  for (int l = 0; l < kLanes; ++l) m = a0[l] > m ? a0[l] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

template <typename T>
T row_sum_squares(const T* x, int64_t n) {
  T acc[kAcc<T>] = {};
  int64_t i = 0;
  for (; i + kAcc<T> <= n; i += kAcc<T>)
    for (int l = 0; l < kAcc<T>; ++l) acc[l] += x[i + l] * x[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += x[i] * x[i];
  return combine(acc);
}

template <typename T>
double row_sum_squares_f64(const T* x, int64_t n) {
  double acc[kAcc<double>] = {};
  int64_t i = 0;
  for (; i + kAcc<double> <= n; i += kAcc<double>)
    for (int l = 0; l < kAcc<double>; ++l) acc[l] += double(x[i + l]) * double(x[i + l]);
  for (int l = 0; i < n; ++i, ++l) acc[l] += double(x[i]) * double(x[i]);
  return combine(acc);
}

template <typename T>
T row_dot(const T* a, const T* b, int64_t n) {
  T acc[kAcc<T>] = {};
  int64_t i = 0;
  for (; i + kAcc<T> <= n; i += kAcc<T>)
    for (int l = 0; l < kAcc<T>; ++l) acc[l] += a[i + l] * b[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i];
  return combine(acc);
}

template <typename T>
T row_dot3(const T* a, const T* b, const T* c, int64_t n) {
  T acc[kAcc<T>] = {};
  int64_t i = 0;
  for (; i + kAcc<T> <= n; i += kAcc<T>)
    for (int l = 0; l < kAcc<T>; ++l) acc[l] += a[i + l] * b[i + l] * c[i + l];
  for (int l = 0; i < n; ++i, ++l) acc[l] += a[i] * b[i] * c[i];
  return combine(acc);
}

template <typename T>
T row_exp_sum(T* out, const T* x, int64_t n, T shift) {
  T acc[kAcc<T>] = {};
  int64_t i = 0;
  if (out) {
    for (; i + kAcc<T> <= n; i += kAcc<T>)
      for (int l = 0; l < kAcc<T>; ++l) {
        const T e = exp_approx(x[i + l] - shift);
        out[i + l] = e;
        acc[l] += e;
      }
    for (int l = 0; i < n; ++i, ++l) {
      const T e = exp_approx(x[i] - shift);
      out[i] = e;
      acc[l] += e;
    }
  } else {
    for (; i + kAcc<T> <= n; i += kAcc<T>)
      for (int l = 0; l < kAcc<T>; ++l) acc[l] += exp_approx(x[i + l] - shift);
    for (int l = 0; i < n; ++i, ++l) acc[l] += exp_approx(x[i] - shift);
  }
  return combine(acc);
}

#define FM_INSTANTIATE(T)                                                  \
  template T row_max<T>(const T*, int64_t);                               \
  template T row_sum_squares<T>(const T*, int64_t);                       \
  template double row_sum_squares_f64<T>(const T*, int64_t);              \
  template T row_dot<T>(const T*, const T*, int64_t);                     \
  template T row_dot3<T>(const T*, const T*, const T*, int64_t);          \
  template T row_exp_sum<T>(T*, const T*, int64_t, T);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
