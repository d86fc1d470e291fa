#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "runtime/base/error.h"
#include "zero/lr_schedule.h"

using namespace fm::zero;

TEST_CASE("t starts at -1; the optimizer step k uses the lr of t = k-2") {
  WarmupLRParams p;
  p.warmup_min_lr = 0.0;
  p.warmup_max_lr = 1e-3;
  p.warmup_num_steps = 5;
  p.warmup_type = WarmupType::Linear;
  LrSchedule s(p, 1e-3);
  CHECK(s.last_batch_iteration() == -1);
  std::vector<double> used;  // the lr each optimizer step runs with
  for (int k = 1; k <= 8; ++k) {
    used.push_back(s.lr());
    s.step();
  }
  const std::vector<double> want{0.0, 0.0, 2e-4, 4e-4, 6e-4, 8e-4, 1e-3, 1e-3};
  REQUIRE(used.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(used[i] == doctest::Approx(want[i]).epsilon(1e-15));
  CHECK(s.last_batch_iteration() == 7);
}

TEST_CASE("resuming at t gives the same lr as stepping there") {
  WarmupDecayLRParams p;
  p.total_num_steps = 50;
  p.warmup_num_steps = 10;
  LrSchedule a(p, 1e-3), b(p, 1e-3);
  for (int i = 0; i < 23; ++i) a.step();
  b.set_last_batch_iteration(22);
  CHECK(a.lr() == b.lr());
  a.step();
  b.step();
  CHECK(a.lr() == b.lr());
}

TEST_CASE("warm-up shapes: log reaches max at W, decay is linear to 0 at total") {
  WarmupDecayLRParams p;
  p.total_num_steps = 20;
  p.warmup_min_lr = 0.0;
  p.warmup_max_lr = 1.0;
  p.warmup_num_steps = 10;
  LrSchedule s(p, 0.5);
  CHECK(s.lr_at(0) == 0.0);  // log(1) = 0
  CHECK(s.lr_at(9) == doctest::Approx(std::log(10.0) / std::log(10.0)));
  CHECK(s.lr_at(10) == doctest::Approx(1.0));
  CHECK(s.lr_at(15) == doctest::Approx(0.5));
  CHECK(s.lr_at(20) == 0.0);
  CHECK(s.lr_at(300) == 0.0);
}

TEST_CASE("WarmupCosineLR scales the base lr and starts at 0") {
  WarmupCosineLRParams p;
  p.total_num_steps = 110;
  p.warmup_num_steps = 10;
  p.warmup_min_ratio = 0.0;
  p.cos_min_ratio = 0.1;
  p.warmup_type = WarmupType::Linear;
  LrSchedule s(p, 2e-3);
  CHECK(s.lr() == 0.0);
  CHECK(s.lr_at(5) == doctest::Approx(2e-3 * 0.5));
  CHECK(s.lr_at(59) == doctest::Approx(2e-3 * (0.1 + 0.9 * 0.5)));  // half way through the cosine
  CHECK(s.lr_at(109) == doctest::Approx(2e-3 * 0.1));
  CHECK(s.lr_at(500) == doctest::Approx(2e-3 * 0.1));
}

TEST_CASE("OneCycle: lr and beta1 move in opposite directions, beta2 becomes 0.99") {
  OneCycleParams p;
  p.cycle_min_lr = 1e-4;
  p.cycle_max_lr = 1e-3;
  p.cycle_first_step_size = 10;
  LrSchedule s(p, 1e-3);
  // Constructor: min lr and min momentum.
  CHECK(s.lr() == 1e-4);
  REQUIRE(s.betas());
  CHECK(s.betas()->beta1 == 0.8);
  CHECK(s.betas()->beta2 == 0.99);
  // Peak of the cycle at t = 9 (scale 1): max lr, min momentum.
  CHECK(s.lr_at(9) == doctest::Approx(1e-3));
  CHECK(s.betas_at(9)->beta1 == doctest::Approx(0.8));
  // Back down at the end of the cycle, then min lr with no decay configured.
  CHECK(s.lr_at(18) == doctest::Approx(1e-4 + 0.9e-3 * 0.1));
  CHECK(s.betas_at(18)->beta1 == doctest::Approx(0.9 - 0.1 * 0.1));
  CHECK(s.lr_at(40) == 1e-4);
  CHECK(s.betas_at(40)->beta1 == 0.9);

  p.cycle_momentum = false;
  CHECK_FALSE(LrSchedule(p, 1e-3).betas());
}

TEST_CASE("LRRangeTest grows the lr linearly, or in stairs") {
  LRRangeTestParams p;
  p.lr_range_test_min_lr = 1e-3;
  p.lr_range_test_step_size = 10;
  p.lr_range_test_step_rate = 2.0;
  LrSchedule s(p, 1.0);
  CHECK(s.lr() == 1e-3);
  CHECK(s.lr_at(4) == doctest::Approx(1e-3 * 2.0));
  p.lr_range_test_staircase = true;
  LrSchedule stairs(p, 1.0);
  CHECK(stairs.lr_at(4) == 1e-3);
  CHECK(stairs.lr_at(9) == doctest::Approx(3e-3));
}

TEST_CASE("no scheduler keeps the base lr") {
  LrSchedule s(ConstantLRParams{}, 7e-4);
  for (int i = 0; i < 3; ++i, s.step()) CHECK(s.lr() == 7e-4);
  CHECK_FALSE(s.betas());
  CHECK(s.name().empty());
}

TEST_CASE("parameters DeepSpeed refuses are InputErrors naming the key") {
  WarmupLRParams w;
  w.warmup_num_steps = 0;
  try {
    LrSchedule s(w, 1e-3);
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "scheduler.params.warmup_num_steps");
    CHECK(std::string(e.what()).find("positive") != std::string::npos);
  }
  OneCycleParams o;
  o.cycle_first_step_size = 0;
  CHECK_THROWS_AS(LrSchedule(o, 1e-3), fm::InputError);
  o.cycle_first_step_size = 5;
  o.cycle_second_step_size = -1;
  CHECK_THROWS_AS(LrSchedule(o, 1e-3), fm::InputError);
  LRRangeTestParams r;
  r.lr_range_test_step_size = 0;
  CHECK_THROWS_AS(LrSchedule(r, 1e-3), fm::InputError);
}
