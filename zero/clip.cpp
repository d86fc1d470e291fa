#include "zero/clip.h"

#include <cmath>

#include "runtime/base/error.h"

namespace fm::zero {

double grad_sum_squares(kernels::Ops& ops, const ParamRange& range, kernels::View grad) {
  FM_CHECK(grad.dtype == kernels::DType::F32, "gradients are fp32");
  double sum = 0.0;
  float* g = grad.as<float>();
  for (const Segment& seg : range.norm)
    sum += ops.sum_squares(kernels::f32(g + (seg.begin - range.begin)), seg.size());
  return sum;
}

double global_grad_norm(double total_sum_squares) { return std::sqrt(total_sum_squares); }

double clip_coefficient(double global_norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double coef = max_norm / (global_norm + 1e-6);
  return coef < 1.0 || std::isnan(coef) ? coef : 1.0;
}

}  // namespace fm::zero
