// Learning-rate schedules with DeepSpeed's formulas and stepping (deepspeed.runtime.lr_schedules).
//
// Stepping: t (DeepSpeed's last_batch_iteration) starts at -1 and the constructor sets the lr for
// t = -1. The engine runs an optimizer step with lr(), then calls step() (t += 1). So optimizer step
// k (1-based) uses the lr of t = k-2: the first two steps both use the warm-up start. Skipped steps
// (an fp16 overflow) call neither. The state to save is t alone.
//
// WarmupCosineLR scales the optimizer's base lr (optimizer.params.lr); the others set the lr
// directly. OneCycle with cycle_momentum also drives Adam's betas: beta1 cycles between the
// momentum bounds and beta2 becomes 0.99, as DeepSpeed writes (momentum, 0.99) into the groups.
// Formulas: docs/optimizer.md.
//
// Bad parameters (those DeepSpeed refuses) throw fm::InputError at "scheduler.params.<key>".
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <string>
#include <variant>
#include <vector>

namespace fm::zero {

enum class WarmupType { Log, Linear };

struct WarmupLRParams {
  double warmup_min_lr = 0.0;
  double warmup_max_lr = 1e-3;
  int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::Log;
};

struct WarmupDecayLRParams {
  int64_t total_num_steps = 0;
  double warmup_min_lr = 0.0;
  double warmup_max_lr = 1e-3;
  int64_t warmup_num_steps = 1000;
  WarmupType warmup_type = WarmupType::Log;
};

struct WarmupCosineLRParams {
  int64_t total_num_steps = 0;
  double warmup_min_ratio = 0.0;
  int64_t warmup_num_steps = 1000;
  double cos_min_ratio = 1e-4;
  WarmupType warmup_type = WarmupType::Log;
};

struct OneCycleParams {
  double cycle_min_lr = 0.0;
  double cycle_max_lr = 0.0;
  double decay_lr_rate = 0.0;
  int64_t cycle_first_step_size = 2000;
  std::optional<int64_t> cycle_second_step_size;    // nullopt: cycle_first_step_size
  int64_t cycle_first_stair_count = 0;              // 0: continuous; n > 0: n stairs per half cycle
  std::optional<int64_t> cycle_second_stair_count;  // nullopt: cycle_first_stair_count
  int64_t decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;

  int64_t second_step_size() const { return cycle_second_step_size.value_or(cycle_first_step_size); }
};

struct LRRangeTestParams {
  double lr_range_test_min_lr = 1e-3;
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;
};

// No scheduler: the lr stays at the optimizer's base lr.
struct ConstantLRParams {};

using LrScheduleParams = std::variant<ConstantLRParams, WarmupLRParams, WarmupDecayLRParams,
                                      WarmupCosineLRParams, OneCycleParams, LRRangeTestParams>;

struct Betas {
  double beta1 = 0.9, beta2 = 0.999;
};

class LrSchedule {
 public:
  // `base_lr` is optimizer.params.lr (what WarmupCosineLR scales and ConstantLR keeps).
  LrSchedule(const LrScheduleParams& params, double base_lr);

  void step() { ++t_; }
  int64_t last_batch_iteration() const { return t_; }
  void set_last_batch_iteration(int64_t t);  // resume from a checkpoint

  double lr() const { return lr_at(t_); }
  // The betas the optimizer must use now, when the schedule drives them (OneCycle with
  // cycle_momentum); nullopt otherwise.
  std::optional<Betas> betas() const { return betas_at(t_); }

  double lr_at(int64_t t) const;
  std::optional<Betas> betas_at(int64_t t) const;

  const LrScheduleParams& params() const { return params_; }
  std::string_view name() const;  // DeepSpeed's type name, "" for ConstantLR
  // Suspicious but legal parameters (a total shorter than the warm-up), for the start-up log.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  LrScheduleParams params_;
  double base_lr_;
  int64_t t_ = -1;
  std::vector<std::string> warnings_;
};

}  // namespace fm::zero
