// The scalar coefficients of one Adam/AdamW update (kernels/ops.h AdamStep), formed in double from
// the hyper-parameters and rounded to the compute type, as torch's single-tensor implementation
// does with its Python scalars. Both backends use them, so they form identical coefficients; the
// per-element update they feed is documented in kernels/cpu/adam.cpp.
#pragma once

#include <cmath>

#include "kernels/ops.h"

namespace fm::kernels {

template <typename T>
struct AdamCoefficients {
  T decay_mul;   // AdamW: 1 - lr*wd (1 without decay)
  T decay_add;   // Adam with L2: wd (0 otherwise)
  T lerp_coeff;  // torch's lerp(m, g, 1-b1): fma(w, g - m, m) for w < 0.5, else fma(w - 1, g - m, g)
  T beta2, w2;   // v' = fma(w2 * g, g, v * beta2)
  T neg_step;    // -(lr / (1 - b1^step))
  T bc2_sqrt;    // sqrt(1 - b2^step)
  T eps;
  bool small_w1;  // 1 - b1 < 0.5: which form of the lerp
};

template <typename T>
AdamCoefficients<T> adam_coefficients(const AdamStep& s) {
  const double bc1 = 1.0 - std::pow(s.beta1, double(s.step));
  const double bc2 = 1.0 - std::pow(s.beta2, double(s.step));
  const bool decay = s.weight_decay != 0.0;
  AdamCoefficients<T> c{};
  c.small_w1 = std::abs(1.0 - s.beta1) < 0.5;
  c.decay_mul = decay && s.adam_w_mode ? static_cast<T>(1.0 - s.lr * s.weight_decay) : T(1);
  c.decay_add = decay && !s.adam_w_mode ? static_cast<T>(s.weight_decay) : T(0);
  const T w1 = static_cast<T>(1.0 - s.beta1);
  c.lerp_coeff = c.small_w1 ? w1 : w1 - T(1);
  c.beta2 = static_cast<T>(s.beta2);
  c.w2 = static_cast<T>(1.0 - s.beta2);
  c.neg_step = static_cast<T>(-(s.lr / bc1));
  c.bc2_sqrt = static_cast<T>(std::pow(bc2, 0.5));
  c.eps = static_cast<T>(s.eps);
  return c;
}

}  // namespace fm::kernels
