// fp16 loss scaling with DeepSpeed's semantics (deepspeed.runtime.fp16.loss_scaler).
//
// The engine multiplies the loss gradient by scale() (grad_scale of the last stage's forward), checks
// the reduced gradients for inf/NaN (MAX over every data- and model-parallel rank), and calls
// update(overflow) once per optimizer step, before the optimizer: on an overflow the step is skipped
// (gradients zeroed, no update, the LR schedule not stepped); otherwise the gradients are divided by
// the scale that produced them (the scale() read BEFORE update) and the step runs.
//
// Dynamic scaling (loss_scale == 0), DynamicLossScaler.update_scale operation by operation:
//  - overflow, and hysteresis is used up (hysteresis == 1 or cur_hysteresis == 1): the scale becomes
//    max(scale / 2, min_loss_scale). At the minimum already, DeepSpeed raises "Current loss scale
//    already at minimum - cannot decrease scale anymore. Exiting run."; so does update(), as an
//    fm::RuntimeFault with that text (the run ends with a non-zero exit; state is left untouched).
//  - overflow with hysteresis left: cur_hysteresis -= 1, the scale stays.
//    Either way last_overflow_iter = cur_iter and the step is skipped.
//  - no overflow: with consecutive_hysteresis, cur_hysteresis is refilled; then when
//    stable = cur_iter - last_overflow_iter - 1 is > 0 and a multiple of loss_scale_window, the scale
//    doubles (and, without consecutive_hysteresis, the hysteresis is refilled).
//  - cur_iter += 1 after every update (not when it raises).
// The first scale is 2^initial_scale_power (DeepSpeed's ZeRO path passes these keys even when the
// config leaves them at their defaults).
// Static scaling (loss_scale > 0): the scale never changes; an overflow still skips the step.
//
// Messages: the lines DeepSpeed's rank 0 logs, without its "[deepspeed] " prefix, e.g.
//   "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 65536, reducing to 32768"
// (scales printed as int() truncations, as there). Only global rank 0 should print them, which is why
// the text always says "Rank 0".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fm::zero {

struct LossScalerConfig {
  double loss_scale = 0;  // > 0: static scale; 0: dynamic
  int64_t initial_scale_power = 16;
  int64_t loss_scale_window = 1000;  // > 0
  int64_t hysteresis = 2;            // DeepSpeed's delayed_shift
  bool consecutive_hysteresis = false;
  double min_loss_scale = 1;  // > 0
};

// Everything a checkpoint must hold to resume the scaler exactly.
struct LossScalerState {
  double scale = 1;
  int64_t cur_iter = 0;
  int64_t last_overflow_iter = -1;
  int64_t cur_hysteresis = 0;
  bool operator==(const LossScalerState&) const = default;
};

struct LossScaleUpdate {
  bool skip_step = false;             // true exactly when overflow was reported
  double attempted_scale = 0;         // the scale the gradients were computed with
  double next_scale = 0;              // scale() from now on
  std::vector<std::string> messages;  // lines for rank 0's log, in DeepSpeed's order
};

class LossScaler {
 public:
  // FM_CHECK on values DeepSpeed's config refuses (window or min scale <= 0, negative static scale);
  // the config layer reports them to the user first.
  explicit LossScaler(const LossScalerConfig& config);

  bool dynamic() const { return dynamic_; }
  double scale() const { return state_.scale; }
  const LossScalerConfig& config() const { return config_; }

  // Once per optimizer step, with the global overflow flag. Throws fm::RuntimeFault when a dynamic
  // scale at its minimum overflows again with no hysteresis left.
  LossScaleUpdate update(bool overflow);

  LossScalerState state() const { return state_; }
  void restore(const LossScalerState& s);

 private:
  LossScalerConfig config_;
  bool dynamic_ = true;
  LossScalerState state_;
};

// The message DeepSpeed raises at the minimum scale (also the RuntimeFault's text).
inline constexpr const char* kLossScaleAtMinimum =
    "Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.";

}  // namespace fm::zero
