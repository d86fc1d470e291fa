// Adam / AdamW over one range of a stage's flat fp32 parameter buffer.
//
// The optimizer owns fp32 first and second moments (m, v) for its range only, allocated with the
// backend's Ops, so a ZeRO rank holds state for its partition and a single process for the whole
// buffer. Semantics are torch.optim.AdamW (adam_w_mode: decoupled decay, p *= 1 - lr*wd) or
// torch.optim.Adam with L2 decay (g += wd*p) as DeepSpeed's FusedAdam with adam_w_mode=false;
// bias correction uses the step count k (1-based) and the current betas. Weight decay applies only
// to the segments whose tensors have ParamInfo::decay (not to norm weights).
//
// The engine sets lr (and betas, when the schedule drives them) before each step. The state to
// checkpoint is step_count() plus m and v (state_numel() fp32 elements each, in range order).
#pragma once

#include <cstdint>

#include "kernels/ops.h"
#include "zero/param_range.h"

namespace fm::zero {

struct AdamConfig {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool adam_w_mode = true;  // true: AdamW (decoupled); false: Adam with L2 added to the gradient
};

class AdamOptimizer {
 public:
  AdamOptimizer(kernels::Ops& ops, const AdamConfig& config, ParamRange range);
  ~AdamOptimizer();
  AdamOptimizer(const AdamOptimizer&) = delete;
  AdamOptimizer& operator=(const AdamOptimizer&) = delete;

  // One update of the range. `master` and `grad` are fp32 views of element range().begin of their
  // buffers (a whole-stage buffer offset to the range, or a partition buffer of the range's size).
  // When `param_out` is given (same offset convention), the updated values are also written there
  // in its dtype: the bf16 working copy on GPUs.
  void step(kernels::View master, kernels::View grad, kernels::View param_out = {});

  void set_lr(double lr) { config_.lr = lr; }
  void set_betas(double beta1, double beta2) {
    config_.beta1 = beta1;
    config_.beta2 = beta2;
  }
  const AdamConfig& config() const { return config_; }
  const ParamRange& range() const { return range_; }

  // Steps taken so far (the next step uses step_count() + 1 for bias correction).
  int64_t step_count() const { return step_count_; }
  void set_step_count(int64_t steps) { step_count_ = steps; }
  kernels::View exp_avg() const { return kernels::f32(m_); }
  kernels::View exp_avg_sq() const { return kernels::f32(v_); }
  int64_t state_numel() const { return range_.size(); }

 private:
  kernels::Ops& ops_;
  AdamConfig config_;
  ParamRange range_;
  int64_t step_count_ = 0;
  float* m_ = nullptr;
  float* v_ = nullptr;
};

}  // namespace fm::zero
