#include "zero/loss_scaler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "runtime/base/error.h"

namespace fm::zero {

namespace {

constexpr double kScaleFactor = 2.0;

// Python's int(x) of a float scale, printed in full (2^40 as 1099511627776, never 1.1e12).
std::string as_int(double x) { return fmt::format("{:.0f}", std::trunc(x)); }

}  // namespace

LossScaler::LossScaler(const LossScalerConfig& config) : config_(config) {
  FM_CHECK(config.loss_scale >= 0, "loss scaler: negative static loss scale");
  dynamic_ = config.loss_scale == 0;
  if (!dynamic_) {
    state_.scale = config.loss_scale;
    return;
  }
  FM_CHECK(config.loss_scale_window > 0, "loss scaler: loss_scale_window must be positive");
  FM_CHECK(config.min_loss_scale > 0, "loss scaler: min_loss_scale must be positive");
  state_.scale = std::ldexp(1.0, static_cast<int>(config.initial_scale_power));
  state_.cur_hysteresis = config.hysteresis;
}

LossScaleUpdate LossScaler::update(bool overflow) {
  LossScaleUpdate u;
  u.skip_step = overflow;
  u.attempted_scale = state_.scale;
  if (!dynamic_) {
    if (overflow) u.messages.push_back("OVERFLOW! Skipping step. Gradients are non-finite, weights were not updated.");
    u.next_scale = state_.scale;
    return u;
  }
  LossScalerState& s = state_;
  if (overflow) {
    if (config_.hysteresis == 1 || s.cur_hysteresis == 1) {
      if (s.scale == config_.min_loss_scale) throw RuntimeFault(kLossScaleAtMinimum);
      const double next = std::max(s.scale / kScaleFactor, config_.min_loss_scale);
      u.messages.push_back(fmt::format("OVERFLOW! Rank 0 Skipping step. Attempted loss scale: {}, reducing to {}",
                                       as_int(s.scale), as_int(next)));
      s.scale = next;
    } else {
      u.messages.push_back(fmt::format(
          "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: {}, but hysteresis is {}. Reducing hysteresis to {}",
          as_int(s.scale), s.cur_hysteresis, s.cur_hysteresis - 1));
      s.cur_hysteresis -= 1;
    }
    s.last_overflow_iter = s.cur_iter;
  } else {
    if (config_.consecutive_hysteresis) {
      u.messages.push_back(
          fmt::format("Consecutive hysteresis is enabled. Restoring hysteresis to {}", config_.hysteresis));
      s.cur_hysteresis = config_.hysteresis;
    }
    const int64_t stable = (s.cur_iter - s.last_overflow_iter) - 1;
    if (stable > 0 && stable % config_.loss_scale_window == 0) {
      if (!config_.consecutive_hysteresis) s.cur_hysteresis = config_.hysteresis;
      s.scale *= kScaleFactor;
    }
  }
  s.cur_iter += 1;
  u.next_scale = s.scale;
  return u;
}

void LossScaler::restore(const LossScalerState& s) {
  FM_CHECK(s.scale > 0, "loss scaler: restored scale must be positive");
  state_ = s;
}

}  // namespace fm::zero
