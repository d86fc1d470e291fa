// Adam / AdamW step in the operation order of torch.optim's single-tensor implementation (the
// default on CPU), rounding where torch rounds:
//   AdamW: p = p * (1 - lr*wd)                 Adam: g = fma(p, wd, g)   (the gradient buffer is untouched)
//   m = lerp(m, g, 1 - b1)                    torch's vectorised lerp: fma(w, g - m, m), w < 0.5
//   v = fma((1 - b2) * g, g, v * b2)           torch's addcmul as its build compiles it
//   p = p + ((-lr / bc1) * m) / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^step
// Scalar coefficients are formed in double from the values as written (see as_written) and enter
// the float arithmetic rounded to float, as Python scalars do in torch. This file is compiled with
// -ffp-contract=off: the only fused multiply-adds are the explicit std::fma calls above.
// Against torch 2.x on x86 (tests/kernels/test_reference.py) m and v come out bit-identical for
// AdamW; torch's float sqrt (MKL's vector math, not correctly rounded) differs from the IEEE sqrt
// used here by 1 ulp in some elements, so parameters differ by an ulp or so of their update.
#include <charconv>
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {

// The hyper-parameters arrive as floats, torch gets them as Python doubles (0.9, not 0.9f), and the
// difference shows: 1 - 0.9f rounds to another float than 1 - 0.9. A float is taken to stand for
// the shortest decimal that rounds to it, which is the number written in the config.
double as_written(float x) {
  char text[32];
  const auto printed = std::to_chars(text, text + sizeof(text), x);
  double value = x;
  std::from_chars(text, printed.ptr, value);
  return value;
}

// The per-element update; the mode switches are folded into coefficients (a multiply by 1 or an add
// of 0 * p is exact) so the loop has no branches and vectorises.
template <typename T, bool kWriteOut, bool kSmallW1>
void adam_loop(T* master, const T* grad, T* m, T* v, T* param_out, int64_t n, const AdamStep& s) {
  const double lr = as_written(s.lr), b1 = as_written(s.beta1), b2 = as_written(s.beta2);
  const double wd = as_written(s.weight_decay);
  const double bc1 = 1.0 - std::pow(b1, double(s.step));
  const double bc2 = 1.0 - std::pow(b2, double(s.step));
  const bool decay = s.weight_decay != 0.0f;
  const T decay_mul = decay && s.adam_w_mode ? static_cast<T>(1.0 - lr * wd) : T(1);
  const T decay_add = decay && !s.adam_w_mode ? static_cast<T>(wd) : T(0);
  // torch's vectorised lerp(m, g, w): fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g).
  const T w1 = static_cast<T>(1.0 - b1);
  const T lerp_coeff = kSmallW1 ? w1 : w1 - T(1);
  const T beta2 = static_cast<T>(b2);
  const T w2 = static_cast<T>(1.0 - b2);
  const T neg_step = static_cast<T>(-(lr / bc1));
  const T bc2_sqrt = static_cast<T>(std::pow(bc2, 0.5));
  const T eps = static_cast<T>(as_written(s.eps));
  for_blocks(n, 16384, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const T p = master[i] * decay_mul;
      const T g = std::fma(master[i], decay_add, grad[i]);
      const T mi = m[i];
      const T mn = std::fma(lerp_coeff, g - mi, kSmallW1 ? mi : g);
      const T vn = std::fma(w2 * g, g, v[i] * beta2);
      const T denom = std::sqrt(vn) / bc2_sqrt + eps;
      const T pn = p + neg_step * mn / denom;
      m[i] = mn;
      v[i] = vn;
      master[i] = pn;
      if constexpr (kWriteOut) param_out[i] = pn;
    }
  });
}

}  // namespace

template <typename T>
void adam_update(T* master, const T* grad, T* m, T* v, T* param_out, int64_t n, const AdamStep& s) {
  FM_CHECK(s.step >= 1, "adam_update: step is 1-based");
  // Loop variants instead of branches inside the loop, which would keep it from vectorising.
  const bool small_w1 = std::abs(1.0 - as_written(s.beta1)) < 0.5;
  if (param_out) {
    if (small_w1)
      adam_loop<T, true, true>(master, grad, m, v, param_out, n, s);
    else
      adam_loop<T, true, false>(master, grad, m, v, param_out, n, s);
  } else {
    if (small_w1)
      adam_loop<T, false, true>(master, grad, m, v, param_out, n, s);
    else
      adam_loop<T, false, false>(master, grad, m, v, param_out, n, s);
  }
}

template void adam_update<float>(float*, const float*, float*, float*, float*, int64_t, const AdamStep&);
template void adam_update<double>(double*, const double*, double*, double*, double*, int64_t,
                                  const AdamStep&);

}  // namespace fm::kernels::cpu
