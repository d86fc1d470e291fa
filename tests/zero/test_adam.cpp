#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "kernels/cpu/cpu_ops.h"
#include "test_layouts.h"
#include "zero/adam.h"
#include "zero/clip.h"
#include "zero/zero_plan.h"

using namespace fm::zero;
using fm::kernels::f32;
using fm::zero::testing::head_stage_layout;

namespace {

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

bool in_norm_weight(const fm::model::ParamLayout& layout, int64_t i) {
  for (const auto& p : layout.params)
    if (i >= p.offset && i < p.offset + p.numel()) return !p.decay;
  return false;
}

}  // namespace

TEST_CASE("AdamW decays every tensor but the norm weights") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  AdamConfig cfg;
  cfg.lr = 0.01;
  cfg.weight_decay = 0.1;
  AdamOptimizer opt(*ops, cfg, whole_buffer_range(layout));
  auto params = random_vector(layout.total, 1);
  const auto before = params;
  std::vector<float> grads(layout.total, 0.0f);  // zero gradients: only the decay moves weights
  opt.step(f32(params.data()), f32(grads.data()));
  for (int64_t i = 0; i < layout.total; ++i) {
    CAPTURE(i);
    if (in_norm_weight(layout, i))
      CHECK(params[i] == before[i]);
    else
      CHECK(params[i] == doctest::Approx(before[i] * (1.0 - 0.01 * 0.1)).epsilon(1e-6));
  }
}

TEST_CASE("Adam with L2 decay (adam_w_mode false) adds decay to the gradient, also not on norms") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  AdamConfig cfg;
  cfg.lr = 0.01;
  cfg.weight_decay = 0.1;
  cfg.adam_w_mode = false;
  AdamOptimizer opt(*ops, cfg, whole_buffer_range(layout));
  auto params = random_vector(layout.total, 2);
  const auto before = params;
  std::vector<float> grads(layout.total, 0.0f);
  opt.step(f32(params.data()), f32(grads.data()));
  for (int64_t i = 0; i < layout.total; ++i) {
    CAPTURE(i);
    if (in_norm_weight(layout, i)) {
      CHECK(params[i] == before[i]);
    } else {
      // g = wd * p, first step of Adam moves by lr * sign(g).
      const double moved = before[i] - params[i];
      CHECK(moved == doctest::Approx(before[i] > 0 ? 0.01 : -0.01).epsilon(1e-4));
    }
  }
}

TEST_CASE("first step: bias correction makes the update lr * sign(g); moments are exposed in range order") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  AdamConfig cfg;
  cfg.lr = 1e-3;
  const ParamRange range = make_param_range(layout, 100, 300);
  AdamOptimizer opt(*ops, cfg, range);
  auto params = random_vector(layout.total, 3);
  const auto grads = random_vector(layout.total, 4);
  const auto before = params;
  opt.step(f32(params.data() + range.begin), f32(const_cast<float*>(grads.data()) + range.begin));
  CHECK(opt.step_count() == 1);
  REQUIRE(opt.state_numel() == 200);
  const float* m = opt.exp_avg().as<float>();
  const float* v = opt.exp_avg_sq().as<float>();
  for (int64_t i = 0; i < layout.total; ++i) {
    CAPTURE(i);
    if (i < range.begin || i >= range.end) {
      CHECK(params[i] == before[i]);
      continue;
    }
    CHECK(before[i] - params[i] == doctest::Approx(grads[i] > 0 ? 1e-3 : -1e-3).epsilon(1e-3));
    CHECK(m[i - range.begin] == doctest::Approx(0.1 * grads[i]).epsilon(1e-6));
    CHECK(v[i - range.begin] == doctest::Approx(0.001 * grads[i] * grads[i]).epsilon(1e-5));
  }
}

TEST_CASE("ZeRO partitions updated separately give the same bits as the whole buffer") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  AdamConfig cfg;
  cfg.lr = 3e-3;
  cfg.weight_decay = 0.05;
  const int dp = 3;
  const ZeroPartitioning part = make_zero_partitioning(layout.total, dp);
  REQUIRE(part.padded_numel == 420);

  std::vector<float> whole = random_vector(part.padded_numel, 5);
  std::fill(whole.begin() + layout.total, whole.end(), 0.0f);
  std::vector<float> sharded = whole;
  AdamOptimizer single(*ops, cfg, whole_buffer_range(layout));
  std::vector<std::unique_ptr<AdamOptimizer>> ranks;
  for (int r = 0; r < dp; ++r)
    ranks.push_back(
        std::make_unique<AdamOptimizer>(*ops, cfg, make_param_range(layout, part.begin(r), part.end(r))));

  for (int step = 0; step < 4; ++step) {
    std::vector<float> grads = random_vector(part.padded_numel, 10 + step);
    std::fill(grads.begin() + layout.total, grads.end(), 0.0f);
    single.set_lr(cfg.lr * (step + 1));
    single.step(f32(whole.data()), f32(grads.data()));
    for (int r = 0; r < dp; ++r) {
      ranks[r]->set_lr(cfg.lr * (step + 1));
      // ZeRO-2 style: each rank has only its own gradient partition.
      std::vector<float> grad_part(grads.begin() + part.begin(r), grads.begin() + part.end(r));
      ranks[r]->step(f32(sharded.data() + part.begin(r)), f32(grad_part.data()));
    }
  }
  CHECK(std::equal(whole.begin(), whole.end(), sharded.begin()));
  for (int64_t i = layout.total; i < part.padded_numel; ++i) CHECK(sharded[i] == 0.0f);
}

TEST_CASE("param_out receives the updated values at the same offsets, in its dtype") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  const ParamRange range = make_param_range(layout, 50, 250);
  AdamOptimizer opt(*ops, AdamConfig{}, range);
  auto master = random_vector(layout.total, 6);
  const auto grads = random_vector(layout.total, 7);
  std::vector<float> out32(layout.total, -7.0f);
  std::vector<uint16_t> out16(layout.total, 0);
  opt.step(f32(master.data() + 50), f32(const_cast<float*>(grads.data()) + 50), f32(out32.data() + 50));
  for (int64_t i = 0; i < layout.total; ++i) CHECK(out32[i] == (i >= 50 && i < 250 ? master[i] : -7.0f));
  opt.step(f32(master.data() + 50), f32(const_cast<float*>(grads.data()) + 50),
           {out16.data() + 50, fm::kernels::DType::BF16});
  for (int64_t i = 0; i < layout.total; ++i) {
    if (i < 50 || i >= 250) {
      CHECK(out16[i] == 0);
      continue;
    }
    uint32_t bits = static_cast<uint32_t>(out16[i]) << 16;
    float back;
    std::memcpy(&back, &bits, sizeof back);
    CHECK(back == doctest::Approx(master[i]).epsilon(1.0 / 128));
  }
}

TEST_CASE("step count and moments can be restored") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  AdamConfig cfg;
  cfg.weight_decay = 0.01;
  AdamOptimizer a(*ops, cfg, whole_buffer_range(layout));
  AdamOptimizer b(*ops, cfg, whole_buffer_range(layout));
  auto pa = random_vector(layout.total, 8);
  for (int s = 0; s < 3; ++s) {
    auto g = random_vector(layout.total, 20 + s);
    a.step(f32(pa.data()), f32(g.data()));
  }
  // b resumes from a's state.
  auto pb = pa;
  b.set_step_count(a.step_count());
  std::memcpy(b.exp_avg().ptr, a.exp_avg().ptr, sizeof(float) * a.state_numel());
  std::memcpy(b.exp_avg_sq().ptr, a.exp_avg_sq().ptr, sizeof(float) * a.state_numel());
  auto g = random_vector(layout.total, 30);
  a.step(f32(pa.data()), f32(g.data()));
  b.step(f32(pb.data()), f32(g.data()));
  CHECK(pa == pb);
  CHECK(b.step_count() == 4);
}

TEST_CASE("gradient norm: tied replicas count once; clip coefficient as torch") {
  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = head_stage_layout();
  std::vector<float> grads(layout.total, 0.0f);
  for (int64_t i = 0; i < layout.total; ++i) grads[i] = (i % 5) * 0.25f - 0.5f;
  double expected = 0;
  for (int64_t i = 0; i < 376; ++i) expected += double(grads[i]) * grads[i];  // not the replica tail
  CHECK(grad_sum_squares(*ops, whole_buffer_range(layout), f32(grads.data())) == doctest::Approx(expected));
  // Split over partitions, the per-range sums add up to the same total.
  const ZeroPartitioning part = make_zero_partitioning(layout.total, 4);
  std::vector<float> padded(grads);
  padded.resize(part.padded_numel, 0.0f);
  double total = 0;
  for (int r = 0; r < 4; ++r)
    total += grad_sum_squares(*ops, make_param_range(layout, part.begin(r), part.end(r)),
                              f32(padded.data() + part.begin(r)));
  CHECK(total == doctest::Approx(expected).epsilon(1e-12));
  CHECK(global_grad_norm(16.0) == 4.0);

  CHECK(clip_coefficient(4.0, 1.0) == doctest::Approx(1.0 / (4.0 + 1e-6)));
  CHECK(clip_coefficient(0.5, 1.0) == 1.0);
  CHECK(clip_coefficient(1.0, 1.0) < 1.0);     // max_norm / (norm + 1e-6) is just below 1
  CHECK(clip_coefficient(100.0, 0.0) == 1.0);  // gradient_clipping 0: off
  CHECK(clip_coefficient(INFINITY, 1.0) == 0.0);
  CHECK(std::isnan(clip_coefficient(NAN, 1.0)));
}
