// Global gradient-norm clipping, split so the sum can cross ranks.
//
// Each rank computes the sum of squares of the gradients it is responsible for
// (grad_sum_squares over its ParamRange: tied replicas excluded, so a tied weight counts once);
// the caller all-reduces (sums) those doubles over the ranks that hold disjoint pieces of the
// model: pipeline stages, and ZeRO partitions when the optimizer is sharded (without ZeRO every
// data-parallel rank holds the same reduced gradients, so only one copy may be counted). Then
// norm = sqrt(total) and, as torch.nn.utils.clip_grad_norm_ and DeepSpeed's fp32 path,
// coef = max_norm / (norm + 1e-6), applied (grads *= coef) only when coef < 1.
#pragma once

#include "kernels/ops.h"
#include "zero/param_range.h"

namespace fm::zero {

// Sum of squared gradients over range.norm. `grad` is an fp32 view of element range.begin.
double grad_sum_squares(kernels::Ops& ops, const ParamRange& range, kernels::View grad);

// sqrt of the all-reduced sum of squares.
double global_grad_norm(double total_sum_squares);

// The factor to multiply the gradients by: max_norm / (norm + 1e-6) when that is below 1, else 1.
// max_norm <= 0 (gradient_clipping 0) turns clipping off: always 1. A non-finite norm gives a
// coefficient of 0 or NaN, as torch's; callers check std::isfinite(norm) first and skip the step.
double clip_coefficient(double global_norm, double max_norm);

}  // namespace fm::zero
