// Adam / AdamW step in the operation order of torch.optim's single-tensor implementation, with
// torch's rounding of Python scalars: coefficients are formed in double and each enters the fp32
// arithmetic rounded to float.
//   AdamW: p *= 1 - lr*wd                      Adam: g = g + wd * p   (the gradient buffer is untouched)
//   m = lerp(m, g, 1 - b1)                    (torch's lerp: m + w*(g - m) for w < 0.5, else g - (g - m)*(1 - w))
//   v = v * b2 + (1 - b2) * g * g
//   p = p + (-lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),  bc_i = 1 - b_i^step
#include <cmath>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/parallel.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {

// The per-element update; the mode switches are folded into coefficients (a multiply by 1 or an add
// of 0 * p is exact) so the loop has no branches and vectorises.
template <typename T, bool kWriteOut>
void adam_loop(T* master, const T* grad, T* m, T* v, T* param_out, int64_t n, const AdamStep& s) {
  const double lr = s.lr, b1 = s.beta1, b2 = s.beta2, wd = s.weight_decay;
  const double bc1 = 1.0 - std::pow(b1, double(s.step));
  const double bc2 = 1.0 - std::pow(b2, double(s.step));
  const bool decay = s.weight_decay != 0.0f;
  const T decay_mul = decay && s.adam_w_mode ? static_cast<T>(1.0 - lr * wd) : T(1);
  const T decay_add = decay && !s.adam_w_mode ? static_cast<T>(wd) : T(0);
  const T w1 = static_cast<T>(1.0 - b1);
  const bool small_w1 = std::abs(1.0 - b1) < 0.5;
  const T beta2 = static_cast<T>(b2);
  const T w2 = static_cast<T>(1.0 - b2);
  const T neg_step = static_cast<T>(-(lr / bc1));
  const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
  const T eps = static_cast<T>(s.eps);
  for_blocks(n, 16384, [&](int64_t i0, int64_t i1) {
#pragma omp simd
    for (int64_t i = i0; i < i1; ++i) {
      const T p = master[i] * decay_mul;
      const T g = grad[i] + decay_add * master[i];
      const T mi = m[i];
      const T mn = small_w1 ? mi + w1 * (g - mi) : g - (g - mi) * (T(1) - w1);
      T vn = v[i] * beta2;
      vn = vn + w2 * g * g;
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
  if (param_out)
    adam_loop<T, true>(master, grad, m, v, param_out, n, s);
  else
    adam_loop<T, false>(master, grad, m, v, param_out, n, s);
}

template void adam_update<float>(float*, const float*, float*, float*, float*, int64_t, const AdamStep&);
template void adam_update<double>(double*, const double*, double*, double*, double*, int64_t,
                                  const AdamStep&);

}  // namespace fm::kernels::cpu
