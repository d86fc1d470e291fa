// The fp16 loss scaler on hand-worked sequences of DeepSpeed's DynamicLossScaler rules (the
// reference check check_loss_scaler_reference.py compares many random ones with DeepSpeed itself).
#include <doctest/doctest.h>

#include <random>

#include "runtime/base/error.h"
#include "zero/loss_scaler.h"

using fm::zero::LossScaler;
using fm::zero::LossScalerConfig;
using fm::zero::LossScaleUpdate;

TEST_CASE("loss scaler: hysteresis delays the first halving, a stable window doubles") {
  LossScalerConfig c;
  c.initial_scale_power = 4;
  c.loss_scale_window = 2;
  c.hysteresis = 2;
  LossScaler s(c);
  CHECK(s.dynamic());
  CHECK(s.scale() == 16);

  LossScaleUpdate u = s.update(true);  // iteration 0: hysteresis 2 -> 1, scale kept
  CHECK(u.skip_step);
  CHECK(u.attempted_scale == 16);
  CHECK(u.next_scale == 16);
  REQUIRE(u.messages.size() == 1);
  CHECK(u.messages[0] ==
        "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 16, but hysteresis is 2. Reducing hysteresis to 1");

  u = s.update(true);  // iteration 1: hysteresis used up -> halve
  CHECK(u.skip_step);
  CHECK(s.scale() == 8);
  REQUIRE(u.messages.size() == 1);
  CHECK(u.messages[0] == "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 16, reducing to 8");
  CHECK(s.state().last_overflow_iter == 1);

  // Iterations 2, 3: stable intervals 0 and 1 (window 2): no change. Iteration 4: interval 2 -> double.
  u = s.update(false);
  CHECK_FALSE(u.skip_step);
  CHECK(u.messages.empty());
  CHECK(s.scale() == 8);
  s.update(false);
  CHECK(s.scale() == 8);
  CHECK(s.state().cur_hysteresis == 1);
  u = s.update(false);
  CHECK(u.attempted_scale == 8);
  CHECK(s.scale() == 16);
  CHECK(s.state().cur_hysteresis == 2);  // refilled with the doubling
  s.update(false);                       // interval 3
  CHECK(s.scale() == 16);
  s.update(false);  // interval 4
  CHECK(s.scale() == 32);
  CHECK(s.state().cur_iter == 7);
}

TEST_CASE("loss scaler: the scale stops at min_loss_scale, and one more overflow there ends the run") {
  LossScalerConfig c;
  c.initial_scale_power = 2;
  c.hysteresis = 1;
  c.min_loss_scale = 2;
  LossScaler s(c);
  LossScaleUpdate u = s.update(true);
  CHECK(s.scale() == 2);
  CHECK(u.messages.at(0) == "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 4, reducing to 2");
  const auto before = s.state();
  try {
    s.update(true);
    FAIL("expected a RuntimeFault at the minimum scale");
  } catch (const fm::RuntimeFault& e) {
    CHECK(std::string(e.what()) ==
          "Current loss scale already at minimum - cannot decrease scale anymore. Exiting run.");
  }
  CHECK(s.state() == before);  // DeepSpeed raises before touching its counters
}

TEST_CASE("loss scaler: halving is clamped at the minimum, not below") {
  LossScalerConfig c;
  c.initial_scale_power = 0;  // 1
  c.hysteresis = 1;
  c.min_loss_scale = 0.75;
  LossScaler s(c);
  LossScaleUpdate u = s.update(true);
  CHECK(s.scale() == 0.75);
  CHECK(u.messages.at(0) == "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 1, reducing to 0");
}

TEST_CASE("loss scaler: consecutive hysteresis refills on every good step") {
  LossScalerConfig c;
  c.initial_scale_power = 10;
  c.hysteresis = 3;
  c.consecutive_hysteresis = true;
  c.loss_scale_window = 100;
  LossScaler s(c);
  s.update(true);
  CHECK(s.state().cur_hysteresis == 2);
  LossScaleUpdate u = s.update(false);
  CHECK(s.state().cur_hysteresis == 3);
  REQUIRE(u.messages.size() == 1);
  CHECK(u.messages[0] == "Consecutive hysteresis is enabled. Restoring hysteresis to 3");
  s.update(true);
  s.update(true);
  CHECK(s.scale() == 1024);
  s.update(true);
  CHECK(s.scale() == 512);
}

TEST_CASE("loss scaler: a static scale never changes but an overflow still skips the step") {
  LossScalerConfig c;
  c.loss_scale = 128;
  LossScaler s(c);
  CHECK_FALSE(s.dynamic());
  CHECK(s.scale() == 128);
  LossScaleUpdate u = s.update(true);
  CHECK(u.skip_step);
  CHECK(s.scale() == 128);
  CHECK(u.messages.at(0) == "OVERFLOW! Skipping step. Gradients are non-finite, weights were not updated.");
  u = s.update(false);
  CHECK_FALSE(u.skip_step);
  CHECK(u.messages.empty());
}

TEST_CASE("loss scaler: large scales print as whole numbers") {
  LossScalerConfig c;
  c.initial_scale_power = 40;
  c.hysteresis = 1;
  LossScaler s(c);
  CHECK(s.update(true).messages.at(0) ==
        "OVERFLOW! Rank 0 Skipping step. Attempted loss scale: 1099511627776, reducing to 549755813888");
}

TEST_CASE("loss scaler: a restored state continues exactly like the uninterrupted scaler") {
  LossScalerConfig c;
  c.initial_scale_power = 40;  // far from the minimum: 60 random steps never reach it
  c.loss_scale_window = 3;
  c.hysteresis = 2;
  std::mt19937 rng(7);
  std::bernoulli_distribution overflow(0.3);
  std::vector<bool> pattern(60);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = overflow(rng);

  LossScaler whole(c);
  LossScaler first(c);
  for (size_t i = 0; i < 25; ++i) {
    whole.update(pattern[i]);
    first.update(pattern[i]);
  }
  LossScaler resumed(c);
  resumed.restore(first.state());
  for (size_t i = 25; i < pattern.size(); ++i) {
    const LossScaleUpdate a = whole.update(pattern[i]);
    const LossScaleUpdate b = resumed.update(pattern[i]);
    CHECK(a.next_scale == b.next_scale);
    CHECK(a.messages == b.messages);
  }
  CHECK(whole.state() == resumed.state());
}
