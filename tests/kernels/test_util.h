// Helpers of the kernel tests: random data, error measures, central finite differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

namespace fm::kernels::testing {

using Vec = std::vector<double>;

inline Vec random_vec(size_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

inline std::vector<int32_t> random_ints(size_t n, uint32_t seed, int32_t lo, int32_t hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(lo, hi);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
inline Vec to_double(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

inline double max_abs_diff(const Vec& a, const Vec& b) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// max |a - b| / max(|b|, floor): relative where b is large, absolute (over floor) near zero.
inline double max_rel_diff(const Vec& a, const Vec& b, double floor = 1.0) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::abs(a[i] - b[i]) / std::max(std::abs(b[i]), floor));
  return m;
}

inline double dot(const Vec& a, const Vec& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

// Every index of a vector of n, or `count` of them spread evenly when n is larger.
inline std::vector<size_t> sample_indices(size_t n, size_t count) {
  std::vector<size_t> idx;
  if (n <= count) {
    for (size_t i = 0; i < n; ++i) idx.push_back(i);
  } else {
    for (size_t k = 0; k < count; ++k) idx.push_back(k * n / count + (k * 7919) % std::max<size_t>(1, n / count));
  }
  return idx;
}

// Worst disagreement between an analytic gradient and central differences of loss(x), over the
// given indices, as |analytic - numeric| / max(1, |numeric|).
template <typename Loss>
double grad_check(Vec x, const Vec& analytic, const std::vector<size_t>& indices, const Loss& loss,
                  double h = 1e-5) {
  double worst = 0;
  for (size_t i : indices) {
    const double keep = x[i];
    x[i] = keep + h;
    const double up = loss(x);
    x[i] = keep - h;
    const double down = loss(x);
    x[i] = keep;
    const double numeric = (up - down) / (2 * h);
    worst = std::max(worst, std::abs(analytic[i] - numeric) / std::max(1.0, std::abs(numeric)));
  }
  return worst;
}

}  // namespace fm::kernels::testing
