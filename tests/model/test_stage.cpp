// The stage's forward/backward on the CPU backend: splits into stages reproduce the whole model,
// gradients match finite differences of the loss, gradient accumulation, ignored targets, slots.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "model/stage.h"
#include "tests/model/test_configs.h"
#include "runtime/base/error.h"

using namespace fm::model;

namespace {

LlamaConfig tiny_config(bool tied, int layers = 3) {
  LlamaConfig c = testing::make_config({.intermediate = 40, .layers = layers, .vocab = 61, .tied = tied});
  c.initializer_range = 0.1;  // larger than 0.02 so every path carries a visible gradient
  return c;
}

fm::kernels::Ops& cpu() {
  static std::unique_ptr<fm::kernels::Ops> ops = fm::kernels::make_cpu_ops(1);
  return *ops;
}

struct Batch {
  std::vector<int32_t> tokens, targets;
  int64_t counted = 0;  // non-ignored targets
};

Batch make_batch(int B, int T, int V, uint32_t seed, int ignore_every = 5) {
  std::mt19937 rng(seed);
  Batch b;
  for (int n = 0; n < B * T; ++n) {
    b.tokens.push_back(int32_t(rng() % V));
    const bool ignored = ignore_every > 0 && n % ignore_every == ignore_every - 1;
    b.targets.push_back(ignored ? -100 : int32_t(rng() % V));
    b.counted += !ignored;
  }
  return b;
}

// Stages for the cut points `cuts` (0 = c0 < ... < L+2), chained by hand as a pipeline would.
struct Chain {
  std::vector<std::unique_ptr<Stage>> stages;

  Chain(const LlamaConfig& c, const std::vector<int>& cuts, StageShape shape, uint64_t seed) {
    for (size_t s = 0; s + 1 < cuts.size(); ++s) {
      stages.push_back(std::make_unique<Stage>(c, cuts[s], cuts[s + 1], cpu(), shape));
      stages.back()->init_random(seed);
      stages.back()->zero_grads();
    }
  }
  double forward(int slot, const Batch& b, float scale, bool training) {
    const float* h = nullptr;
    double loss = 0;
    for (auto& st : stages) {
      loss = st->forward(slot, b.tokens.data(), h, b.targets.data(), scale, training);
      if (!st->is_last()) h = st->output(slot);
    }
    return loss;
  }
  void backward(int slot) {
    const float* g = nullptr;
    for (auto it = stages.rbegin(); it != stages.rend(); ++it) {
      (*it)->backward(slot, g);
      if (!(*it)->is_first()) g = (*it)->input_grad(slot);
    }
  }
  // Gradients by parameter name; tied replicas are summed into their owner, as the pipeline does.
  std::map<std::string, std::vector<double>> grads() const {
    std::map<std::string, std::vector<double>> out;
    for (const auto& st : stages) {
      std::vector<float> g(st->num_params());
      st->download_grads(g.data());
      for (const auto& p : st->layout().params) {
        auto& dst = out[p.name];
        dst.resize(p.numel());
        for (int64_t i = 0; i < p.numel(); ++i) dst[i] += g[p.offset + i];
      }
    }
    return out;
  }
  std::vector<float> logits(int slot) const {
    const Stage& last = *stages.back();
    const int64_t n = int64_t(last.shape().micro_batch) * last.shape().seq_len * last.config().vocab_size;
    return std::vector<float>(last.logits(slot), last.logits(slot) + n);
  }
};

double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace

TEST_CASE("stage: splits into 2 and 3 stages reproduce the whole model") {
  for (bool tied : {false, true}) {
    CAPTURE(tied);
    const LlamaConfig c = tiny_config(tied);
    const StageShape shape{2, 8, 1};
    const Batch b = make_batch(2, 8, 61, 7);
    const float scale = 1.0f / float(b.counted);

    Chain whole(c, {0, 5}, shape, 42);
    const double loss = whole.forward(0, b, scale, true);
    whole.backward(0);
    const auto g_whole = whole.grads();
    whole.forward(0, b, scale, false);
    const auto logits = whole.logits(0);
    CHECK(std::isfinite(loss));
    CHECK(loss / double(b.counted) == doctest::Approx(std::log(61.0)).epsilon(0.2));

    for (std::vector<int> cuts : {std::vector<int>{0, 2, 5}, {0, 1, 3, 5}, {0, 4, 5}, {0, 3, 4, 5}}) {
      CAPTURE(cuts.size());
      CAPTURE(cuts[1]);
      Chain split(c, cuts, shape, 42);
      const double split_loss = split.forward(0, b, scale, true);
      CHECK(split_loss == doctest::Approx(loss).epsilon(1e-6));
      split.backward(0);
      const auto g_split = split.grads();
      REQUIRE(g_split.size() == g_whole.size());
      for (const auto& [name, g] : g_whole) {
        CAPTURE(name);
        CHECK(rel_diff(g_split.at(name), g) < 1e-6);
      }
      split.forward(0, b, scale, false);
      const auto split_logits = split.logits(0);
      REQUIRE(split_logits.size() == logits.size());
      double worst = 0;
      for (size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::fabs(split_logits[i] - logits[i])));
      CHECK(worst < 1e-6);
    }
  }
}

// Central differences, Richardson-extrapolated, of the mean loss w.r.t. the element of largest
// gradient of every tensor. Tolerance: the loss (~4) carries fp32 rounding noise of a few 1e-7,
// which a step of h = 1e-2 turns into ~1e-5 absolute error in the difference quotient; the
// extrapolation leaves an O(h^4) truncation error below that. The elements tested have gradients
// above 1e-2, so the noise is at most ~1e-3 relative (2.7e-4 seen): 3e-3 relative + 2e-5 absolute
// passes a correct backward, while a missing term, a wrong sign or a transposed product are O(1).
TEST_CASE("stage: gradients match finite differences of the loss") {
  for (bool tied : {false, true}) {
    CAPTURE(tied);
    const LlamaConfig c = tiny_config(tied, 2);
    const StageShape shape{2, 6, 1};
    const Batch b = make_batch(2, 6, 61, 11, 4);
    const float scale = 1.0f / float(b.counted);
    Stage st(c, 0, 4, cpu(), shape);
    st.init_random(5);
    st.zero_grads();
    st.forward(0, b.tokens.data(), nullptr, b.targets.data(), scale, true);
    st.backward(0);
    std::vector<float> params(st.num_params()), grads(st.num_params());
    st.download_params(params.data());
    st.download_grads(grads.data());

    auto loss_at = [&](int64_t k, float delta) {
      std::vector<float> p = params;
      p[k] += delta;
      st.upload_params(p.data());
      return st.forward(0, b.tokens.data(), nullptr, b.targets.data(), scale, false) / double(b.counted);
    };
    int tested = 0, slices = 0;
    for (const auto& p : st.layout().params)
      for (const auto& slice : p.hf) {  // q, k, v and gate, up apart: each has its own backward path
      const int64_t begin = p.offset + slice.row_begin * p.cols, end = begin + slice.rows * p.cols;
      int64_t k = begin;
      for (int64_t i = begin; i < end; ++i)
        if (std::fabs(grads[i]) > std::fabs(grads[k])) k = i;
      CAPTURE(slice.hf_name);
      ++slices;
      REQUIRE(std::fabs(grads[k]) > 1e-2);
      const float h = 1e-2f;
      const double d1 = (loss_at(k, h) - loss_at(k, -h)) / (2.0 * h);
      const double d2 = (loss_at(k, h / 2) - loss_at(k, -h / 2)) / double(h);
      const double fd = (4 * d2 - d1) / 3;
      CHECK(std::fabs(fd - grads[k]) <= 3e-3 * std::fabs(grads[k]) + 2e-5);
      ++tested;
    }
    CHECK(tested == slices);
    st.upload_params(params.data());
  }
}

TEST_CASE("stage: two micro-batches accumulate the gradient of one batch of both") {
  const LlamaConfig c = tiny_config(false);
  const Batch both = make_batch(2, 8, 61, 3);
  Batch first, second;
  first.tokens.assign(both.tokens.begin(), both.tokens.begin() + 8);
  first.targets.assign(both.targets.begin(), both.targets.begin() + 8);
  second.tokens.assign(both.tokens.begin() + 8, both.tokens.end());
  second.targets.assign(both.targets.begin() + 8, both.targets.end());
  const float scale = 1.0f / float(both.counted);

  Chain one(c, {0, 5}, StageShape{2, 8, 1}, 9);
  const double loss = one.forward(0, both, scale, true);
  one.backward(0);

  Chain acc(c, {0, 2, 5}, StageShape{1, 8, 1}, 9);
  double acc_loss = acc.forward(0, first, scale, true);
  acc.backward(0);
  acc_loss += acc.forward(0, second, scale, true);
  acc.backward(0);

  CHECK(acc_loss == doctest::Approx(loss).epsilon(1e-6));
  const auto g1 = one.grads(), g2 = acc.grads();
  for (const auto& [name, g] : g1) {
    CAPTURE(name);
    CHECK(rel_diff(g2.at(name), g) < 1e-5);
  }
}

TEST_CASE("stage: slots hold micro-batches in flight") {
  const LlamaConfig c = tiny_config(false);
  const Batch b0 = make_batch(1, 8, 61, 21), b1 = make_batch(1, 8, 61, 22);
  const float scale = 0.1f;
  // GPipe order: both forwards, then both backwards in reverse
  Chain gpipe(c, {0, 3, 5}, StageShape{1, 8, 2}, 4);
  const double l0 = gpipe.forward(0, b0, scale, true);
  const double l1 = gpipe.forward(1, b1, scale, true);
  gpipe.backward(1);
  gpipe.backward(0);
  // one at a time
  Chain seq(c, {0, 3, 5}, StageShape{1, 8, 1}, 4);
  CHECK(seq.forward(0, b0, scale, true) == l0);
  seq.backward(0);
  CHECK(seq.forward(0, b1, scale, true) == l1);
  seq.backward(0);
  const auto ga = gpipe.grads(), gb = seq.grads();
  for (const auto& [name, g] : ga) {
    CAPTURE(name);
    CHECK(rel_diff(gb.at(name), g) < 1e-6);
  }
}

TEST_CASE("stage: ignored targets count for nothing") {
  const LlamaConfig c = tiny_config(false);
  const int V = 61;
  Batch b = make_batch(2, 8, V, 13, 3);
  Chain chain(c, {0, 5}, StageShape{2, 8, 1}, 1);
  const double sum = chain.forward(0, b, 1.0f, false);
  const auto logits = chain.logits(0);
  double expect = 0;
  for (int n = 0; n < 16; ++n) {
    if (b.targets[n] == -100) continue;
    double mx = -1e30, z = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, double(logits[n * V + v]));
    for (int v = 0; v < V; ++v) z += std::exp(double(logits[n * V + v]) - mx);
    expect += mx + std::log(z) - logits[n * V + b.targets[n]];
  }
  CHECK(sum == doctest::Approx(expect).epsilon(1e-5));

  // every target ignored: no loss and no gradient
  std::fill(b.targets.begin(), b.targets.end(), -100);
  CHECK(chain.forward(0, b, 1.0f, true) == 0.0);
  chain.backward(0);
  for (const auto& [name, g] : chain.grads()) {
    CAPTURE(name);
    CHECK(*std::max_element(g.begin(), g.end(), [](double x, double y) { return std::fabs(x) < std::fabs(y); }) ==
          0.0);
  }
}

TEST_CASE("stage: token ids outside the vocabulary are input errors") {
  const LlamaConfig c = tiny_config(false);
  Stage st(c, 0, 5, cpu(), StageShape{1, 4, 1});
  std::vector<int32_t> tokens = {1, 2, 61, 3}, targets = {1, 2, 3, 4};
  try {
    st.forward(0, tokens.data(), nullptr, targets.data(), 1.0f, false);
    FAIL("accepted token 61 with vocab_size 61");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "tokens[2]");
    CHECK(e.problem().find("61") != std::string::npos);
  }
  tokens[2] = 0;
  targets[3] = -7;
  CHECK_THROWS_AS(st.forward(0, tokens.data(), nullptr, targets.data(), 1.0f, false), fm::InputError);
}

TEST_CASE("stage: memory plan and FLOP count") {
  const LlamaConfig c = tiny_config(false);
  for (StageShape shape : {StageShape{2, 8, 3}, StageShape{3, 7, 2}})
  for (std::pair<int, int> range : {std::pair{0, 5}, {0, 2}, {2, 5}, {1, 4}}) {
    Stage st(c, range.first, range.second, cpu(), shape);
    const MemoryPlan p = st.memory_plan();
    const MemoryPlan q = plan_stage_memory(c, range.first, range.second, shape);
    CHECK(p.total_bytes() == q.total_bytes());
    CHECK(p.param_bytes == st.num_params() * 4);
    CHECK(p.num_slots == shape.num_slots);
    // per slot at least the residual stream and the saved projections of each decoder layer
    const int64_t N = shape.micro_batch * shape.seq_len, layers = std::min(range.second, 4) - std::max(range.first, 1);
    CHECK(p.activation_bytes_per_slot >= 4 * N * (32 + layers * (32 + 64 + 32 + 32 + 80)));
  }

  // Llama-3-8B at T=8192: N_matmul = 7.50B, 6N = 45.0 GF, 12 L d T = 12.9 GF.
  const LlamaConfig l3 = testing::make_config(
      {.hidden = 4096, .intermediate = 14336, .layers = 32, .heads = 32, .kv_heads = 8, .head_dim = 128, .vocab = 128256});
  CHECK(matmul_param_count(l3) == 7'504'658'432);
  CHECK(flops_per_token(l3, 8192) == doctest::Approx(57.9e9).epsilon(0.002));
}
