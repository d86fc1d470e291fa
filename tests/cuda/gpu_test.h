// Helpers of the GPU tests: the two backends, device buffers filled from host vectors, NaN
// poisoning, bf16 rounding of inputs (so the CPU reference sees exactly the values the GPU reads)
// and the error measure.
//
// Error measure: max |got - want| / max |want| over a tensor (relative to the tensor's scale), with
// any non-finite value in `got` counted as an infinite error: an element an op failed to write
// keeps the NaN it was poisoned with.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "kernels/cpu/convert.h"
#include "kernels/ops.h"
#include "tests/kernels/test_util.h"

namespace fm::kernels::gputest {

using FVec = std::vector<float>;

// Set by the test's main once a GPU was found.
inline Ops* g_gpu = nullptr;
inline Ops* g_cpu = nullptr;

inline double tolerance(DType t) { return t == DType::F32 ? 1e-5 : 1e-2; }

inline FVec random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  return testing::to_float(testing::random_vec(n, seed, lo, hi));
}
using testing::random_ints;

// The values a tensor of type t holds when given v.
inline FVec rounded(FVec v, DType t) {
  if (t == DType::BF16)
    for (float& x : v) x = cpu::bf16_to_float(cpu::float_to_bf16(x));
  return v;
}

inline double rel_err(const FVec& got, const FVec& want) {
  if (got.size() != want.size()) return std::numeric_limits<double>::infinity();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return scale == 0 ? diff : diff / scale;
}

// A device buffer of n elements of type t, released on destruction.
class Dev {
 public:
  Dev(int64_t n, DType t) : n_(n), t_(t), p_(g_gpu->alloc(size_t(std::max<int64_t>(n, 1)) * dtype_size(t))) {}
  ~Dev() { g_gpu->release(p_); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;

  View v() const { return {p_, t_}; }
  int64_t n() const { return n_; }

  // Host floats -> this buffer's type (ops.copy from host memory converts).
  void set(const FVec& host) { g_gpu->copy(v(), f32(host.data()), n_); }
  void set_ints(const std::vector<int32_t>& host) { g_gpu->copy(v(), i32(host.data()), n_); }
  void poison() { set(FVec(size_t(n_), std::numeric_limits<float>::quiet_NaN())); }
  FVec get() const {
    FVec host(static_cast<size_t>(n_));
    g_gpu->copy(f32(host.data()), v(), n_);
    return host;
  }

 private:
  int64_t n_;
  DType t_;
  void* p_;
};

inline std::unique_ptr<Dev> upload(const FVec& host, DType t) {
  auto d = std::make_unique<Dev>(int64_t(host.size()), t);
  d->set(host);
  return d;
}
inline std::unique_ptr<Dev> upload_ints(const std::vector<int32_t>& host) {
  auto d = std::make_unique<Dev>(int64_t(host.size()), DType::I32);
  d->set_ints(host);
  return d;
}
inline std::unique_ptr<Dev> poisoned(int64_t n, DType t) {
  auto d = std::make_unique<Dev>(n, t);
  d->poison();
  return d;
}

}  // namespace fm::kernels::gputest
