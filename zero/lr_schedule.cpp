#include "zero/lr_schedule.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "runtime/base/error.h"

// Each formula keeps the order of DeepSpeed's floating-point operations, so the values agree to
// the last bit with the same libm (the reference test allows 1e-12 relative).

namespace fm::zero {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

void require_positive(int64_t value, const char* key) {
  if (value <= 0)
    throw InputError(fmt::format("scheduler.params.{}", key),
                     fmt::format("must be a positive integer, got {}", value));
}

// Warm-up progress in [0, 1) for t < W (W = max(2, warmup_num_steps)), as DeepSpeed's _get_gamma.
double warmup_progress(int64_t t, int64_t num_steps, WarmupType type) {
  const int64_t w = std::max<int64_t>(2, num_steps);
  if (type == WarmupType::Log) {
    const double inverse_log_warm_up = 1.0 / std::log(static_cast<double>(w));
    return inverse_log_warm_up * std::log(static_cast<double>(t + 1));
  }
  return static_cast<double>(t) / static_cast<double>(w);
}

double warmup_lr(const WarmupLRParams& p, int64_t t) {
  if (t < 0) return p.warmup_min_lr;
  const int64_t w = std::max<int64_t>(2, p.warmup_num_steps);
  const double gamma = t < w ? warmup_progress(t, p.warmup_num_steps, p.warmup_type) : 1.0;
  return p.warmup_min_lr + (p.warmup_max_lr - p.warmup_min_lr) * gamma;
}

double warmup_decay_lr(const WarmupDecayLRParams& p, int64_t t) {
  if (t < 0) return p.warmup_min_lr;
  const int64_t w = std::max<int64_t>(2, p.warmup_num_steps);
  double gamma;
  if (t < w) {
    gamma = warmup_progress(t, p.warmup_num_steps, p.warmup_type);
  } else {
    const double span = std::max(1.0, static_cast<double>(p.total_num_steps - w));
    gamma = std::max(0.0, static_cast<double>(p.total_num_steps - t) / span);
  }
  return p.warmup_min_lr + (p.warmup_max_lr - p.warmup_min_lr) * gamma;
}

double warmup_cosine_ratio(const WarmupCosineLRParams& p, int64_t t) {
  const int64_t w = std::max<int64_t>(2, p.warmup_num_steps);
  if (t < w) {
    const double ratio = warmup_progress(t, p.warmup_num_steps, p.warmup_type);
    return p.warmup_min_ratio + ratio * (1.0 - p.warmup_min_ratio);
  }
  const int64_t real_last_step = t - w + 1;
  const int64_t real_total_steps = std::max<int64_t>(1, p.total_num_steps - w);
  const double progress =
      std::min(1.0, static_cast<double>(real_last_step) / static_cast<double>(real_total_steps));
  const double cosine = (1 + std::cos(std::numbers::pi * progress)) / 2;
  return std::max(0.0, p.cos_min_ratio + (1.0 - p.cos_min_ratio) * cosine);
}

struct Cycle {
  double first, second, total, step_ratio;
  int64_t first_stairs, second_stairs;
};

Cycle one_cycle_shape(const OneCycleParams& p) {
  Cycle c;
  c.first = static_cast<double>(p.cycle_first_step_size);
  c.second = static_cast<double>(p.cycle_second_step_size.value_or(p.cycle_first_step_size));
  c.total = c.first + c.second;
  c.step_ratio = c.first / c.total;
  c.first_stairs = p.cycle_first_stair_count;
  c.second_stairs = p.cycle_second_stair_count.value_or(p.cycle_first_stair_count);
  return c;
}

// Position in the cycle as a fraction of the amplitude: rises 0 -> 1 over the first half, falls
// back over the second (in stairs when a stair count is set).
double one_cycle_scale(const OneCycleParams& p, int64_t t) {
  const Cycle c = one_cycle_shape(p);
  const double bi = static_cast<double>(t + 1);
  const double cycle = std::floor(1 + bi / c.total);
  const double x = 1. + bi / c.total - cycle;
  double scale;
  int64_t stairs;
  if (x <= c.step_ratio) {
    scale = x / c.step_ratio;
    stairs = c.first_stairs;
  } else {
    scale = (x - 1) / (c.step_ratio - 1);
    stairs = c.second_stairs;
  }
  if (stairs > 0) {
    const double in_cycle = std::fmod(bi, c.total);
    const double position = in_cycle <= c.first
                                ? in_cycle * static_cast<double>(stairs) / c.first
                                : (c.total - in_cycle) * static_cast<double>(stairs) / c.second;
    scale = std::floor(position) / static_cast<double>(stairs);
  }
  return scale;
}

double one_cycle_lr(const OneCycleParams& p, int64_t t) {
  if (t < 0) return p.cycle_min_lr;
  const Cycle c = one_cycle_shape(p);
  if (static_cast<double>(t) < c.total) {
    return p.cycle_min_lr + (p.cycle_max_lr - p.cycle_min_lr) * one_cycle_scale(p, t);
  }
  if (p.decay_step_size == 0 || p.decay_lr_rate == 0) return p.cycle_min_lr;
  const double decay_iteration = static_cast<double>(t) - c.total + 1;
  const double interval = decay_iteration / static_cast<double>(p.decay_step_size);
  return p.cycle_min_lr / (1 + p.decay_lr_rate * interval);
}

constexpr double kOneCycleBeta2 = 0.99;

Betas one_cycle_betas(const OneCycleParams& p, int64_t t) {
  if (t < 0) return {p.cycle_min_mom, kOneCycleBeta2};
  const Cycle c = one_cycle_shape(p);
  if (static_cast<double>(t) < c.total) {
    const double height = (p.cycle_max_mom - p.cycle_min_mom) * one_cycle_scale(p, t);
    return {p.cycle_max_mom - height, kOneCycleBeta2};
  }
  if (p.decay_step_size == 0 || p.decay_mom_rate == 0) return {p.cycle_max_mom, kOneCycleBeta2};
  const double decay_iteration = static_cast<double>(t) - c.total + 1;
  const double interval = decay_iteration / static_cast<double>(p.decay_step_size);
  return {p.cycle_max_mom * (1 + p.decay_mom_rate * interval), kOneCycleBeta2};
}

double range_test_lr(const LRRangeTestParams& p, int64_t t) {
  double interval = static_cast<double>(t + 1) / static_cast<double>(p.lr_range_test_step_size);
  if (p.lr_range_test_staircase) interval = std::floor(interval);
  return p.lr_range_test_min_lr * (1 + p.lr_range_test_step_rate * interval);
}

void warn_short_total(int64_t total, int64_t warmup, std::vector<std::string>& warnings) {
  if (total < std::max<int64_t>(2, warmup))
    warnings.push_back(fmt::format("scheduler: total_num_steps {} is less than warmup_num_steps {}", total, warmup));
}

}  // namespace

LrSchedule::LrSchedule(const LrScheduleParams& params, double base_lr) : params_(params), base_lr_(base_lr) {
  std::visit(Overloaded{
                 [](const ConstantLRParams&) {},
                 [](const WarmupLRParams& p) { require_positive(p.warmup_num_steps, "warmup_num_steps"); },
                 [this](const WarmupDecayLRParams& p) {
                   require_positive(p.warmup_num_steps, "warmup_num_steps");
                   warn_short_total(p.total_num_steps, p.warmup_num_steps, warnings_);
                 },
                 [this](const WarmupCosineLRParams& p) {
                   require_positive(p.warmup_num_steps, "warmup_num_steps");
                   warn_short_total(p.total_num_steps, p.warmup_num_steps, warnings_);
                 },
                 [](const OneCycleParams& p) {
                   require_positive(p.cycle_first_step_size, "cycle_first_step_size");
                   if (p.cycle_second_step_size && *p.cycle_second_step_size < 0)
                     throw InputError("scheduler.params.cycle_second_step_size",
                                      fmt::format("must not be negative, got {}", *p.cycle_second_step_size));
                 },
                 [](const LRRangeTestParams& p) {
                   require_positive(p.lr_range_test_step_size, "lr_range_test_step_size");
                 },
             },
             params_);
}

void LrSchedule::set_last_batch_iteration(int64_t t) {
  FM_CHECK(t >= -1, "last_batch_iteration starts at -1");
  t_ = t;
}

double LrSchedule::lr_at(int64_t t) const {
  return std::visit(
      Overloaded{
          [&](const ConstantLRParams&) { return base_lr_; },
          [&](const WarmupLRParams& p) { return warmup_lr(p, t); },
          [&](const WarmupDecayLRParams& p) { return warmup_decay_lr(p, t); },
          [&](const WarmupCosineLRParams& p) { return t < 0 ? 0.0 : base_lr_ * warmup_cosine_ratio(p, t); },
          [&](const OneCycleParams& p) { return one_cycle_lr(p, t); },
          [&](const LRRangeTestParams& p) { return range_test_lr(p, t); },
      },
      params_);
}

std::optional<Betas> LrSchedule::betas_at(int64_t t) const {
  const auto* p = std::get_if<OneCycleParams>(&params_);
  if (!p || !p->cycle_momentum) return std::nullopt;
  return one_cycle_betas(*p, t);
}

std::string_view LrSchedule::name() const {
  return std::visit(Overloaded{
                        [](const ConstantLRParams&) { return std::string_view{}; },
                        [](const WarmupLRParams&) { return std::string_view{"WarmupLR"}; },
                        [](const WarmupDecayLRParams&) { return std::string_view{"WarmupDecayLR"}; },
                        [](const WarmupCosineLRParams&) { return std::string_view{"WarmupCosineLR"}; },
                        [](const OneCycleParams&) { return std::string_view{"OneCycle"}; },
                        [](const LRRangeTestParams&) { return std::string_view{"LRRangeTest"}; },
                    },
                    params_);
}

}  // namespace fm::zero
