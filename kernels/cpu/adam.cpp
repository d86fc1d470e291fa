// Adam / AdamW step in the operation order of torch.optim's single-tensor implementation (the
// default on CPU), rounding where torch rounds:
//   AdamW: p = p * (1 - lr*wd)                 Adam: g = fma(p, wd, g)   (the gradient buffer is untouched)
//   m = lerp(m, g, 1 - b1)                    torch's vectorised lerp: fma(w, g - m, m), w < 0.5
//   v = fma((1 - b2) * g, g, v * b2)           torch's addcmul as its build compiles it
//   p = p + ((-lr / bc1) * m) / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^step
// Scalar coefficients are formed in double (kernels/adam_coefficients.h) and enter the float
// arithmetic rounded to float, as Python scalars do in torch. This file is compiled with
// -ffp-contract=off: the only fused multiply-adds are the explicit std::fma calls above.
// Against torch 2.x on x86 (tests/kernels/test_reference.py) m and v come out bit-identical for
// AdamW; torch's float sqrt (MKL's vector math, not correctly rounded) differs from the IEEE sqrt
// used here by 1 ulp in some elements, so parameters differ by an ulp or so of their update.
#include <cmath>

#include "kernels/adam_coefficients.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {

// The per-element update; the mode switches are folded into coefficients (a multiply by 1 or an add
// of 0 * p is exact) so the loop has no branches and vectorises.
template <typename T, bool kWriteOut, bool kSmallW1>
void adam_loop(T* master, const T* grad, T* m, T* v, T* param_out, int64_t n, const AdamStep& s) {
  const AdamCoefficients<T> c = adam_coefficients<T>(s);
  const T decay_mul = c.decay_mul, decay_add = c.decay_add, lerp_coeff = c.lerp_coeff, beta2 = c.beta2, w2 = c.w2;
  const T neg_step = c.neg_step, bc2_sqrt = c.bc2_sqrt, eps = c.eps;
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
  const bool small_w1 = adam_coefficients<T>(s).small_w1;
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
