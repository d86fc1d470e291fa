// Parameter layout (param_layout.h) and random init (init.h).
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "model/init.h"
#include "model/llama_config.h"
#include "model/param_layout.h"
#include "tests/model/test_configs.h"

using namespace fm::model;

namespace {

LlamaConfig small_config(bool tied) { return testing::make_config({.tied = tied}); }

}  // namespace

TEST_CASE("layout: the whole model, untied") {
  const LlamaConfig c = small_config(false);
  const int64_t C = 32, F = 48, V = 50, Q = 32, KV = 16;
  ParamLayout l = make_param_layout(c, 0, 6);
  REQUIRE(l.params.size() == 1 + 4 * 6 + 2);
  int64_t offset = 0;
  for (const auto& p : l.params) {  // contiguous, in order
    CHECK(p.offset == offset);
    offset += p.numel();
    CHECK(!p.replica);
    CHECK(p.tied_key.empty());
    CHECK(p.decay == (p.cols != 1));  // norms are the vectors, and the only params without decay
  }
  CHECK(l.total == offset);
  CHECK(l.params[0].name == "embed_tokens");
  CHECK(l.params[0].rows == V);
  CHECK(l.params[0].cols == C);
  CHECK(l.params[0].layer == 0);

  const std::vector<std::string> per_layer = {"input_layernorm", "qkv", "o_proj", "post_attention_layernorm",
                                              "gateup", "down_proj"};
  for (int i = 0; i < 4; ++i)
    for (size_t k = 0; k < per_layer.size(); ++k) {
      const ParamInfo& p = l.params[1 + 6 * i + k];
      CHECK(p.name == "layers." + std::to_string(i) + "." + per_layer[k]);
      CHECK(p.layer == i + 1);
    }
  const ParamInfo* qkv = l.find("layers.2.qkv");
  REQUIRE(qkv);
  CHECK(qkv->rows == Q + 2 * KV);
  CHECK(qkv->cols == C);
  REQUIRE(qkv->hf.size() == 3);
  CHECK(qkv->hf[0].hf_name == "model.layers.2.self_attn.q_proj.weight");
  CHECK((qkv->hf[0].row_begin == 0 && qkv->hf[0].rows == Q));
  CHECK(qkv->hf[1].hf_name == "model.layers.2.self_attn.k_proj.weight");
  CHECK((qkv->hf[1].row_begin == Q && qkv->hf[1].rows == KV));
  CHECK(qkv->hf[2].hf_name == "model.layers.2.self_attn.v_proj.weight");
  CHECK((qkv->hf[2].row_begin == Q + KV && qkv->hf[2].rows == KV));
  const ParamInfo* gu = l.find("layers.0.gateup");
  REQUIRE(gu);
  CHECK(gu->rows == 2 * F);
  REQUIRE(gu->hf.size() == 2);
  CHECK(gu->hf[0].hf_name == "model.layers.0.mlp.gate_proj.weight");
  CHECK(gu->hf[1].hf_name == "model.layers.0.mlp.up_proj.weight");
  CHECK(gu->hf[1].row_begin == F);
  CHECK(l.find("layers.3.o_proj")->cols == Q);
  CHECK(l.find("layers.3.down_proj")->cols == F);
  CHECK(l.find("layers.1.input_layernorm")->hf[0].hf_name == "model.layers.1.input_layernorm.weight");
  CHECK(l.find("norm")->hf[0].hf_name == "model.norm.weight");
  CHECK(l.find("lm_head")->hf[0].hf_name == "lm_head.weight");
  CHECK(l.find("lm_head")->layer == 5);

  REQUIRE(l.layer_first_param.size() == 7);
  CHECK(l.layer_first_param[0] == 0);
  CHECK(l.layer_first_param[1] == 1);
  CHECK(l.layer_first_param[5] == 25);
  CHECK(l.layer_first_param[6] == l.params.size());

  auto counts = layer_param_counts(c);
  REQUIRE(counts.size() == 6);
  for (int layer = 0; layer < 6; ++layer) {
    CAPTURE(layer);
    CHECK(make_param_layout(c, layer, layer + 1).total == counts[layer]);
  }
}

TEST_CASE("layout: stages concatenate to the whole model") {
  for (bool tied : {false, true}) {
    const LlamaConfig c = small_config(tied);
    ParamLayout full = make_param_layout(c, 0, 6);
    for (std::vector<int> cuts : {std::vector<int>{0, 3, 6}, {0, 1, 2, 5, 6}, {0, 5, 6}}) {
      std::vector<std::string> names;
      for (size_t s = 0; s + 1 < cuts.size(); ++s) {
        ParamLayout l = make_param_layout(c, cuts[s], cuts[s + 1]);
        CHECK(l.layer_begin == cuts[s]);
        CHECK(l.layer_end == cuts[s + 1]);
        CHECK(l.layer_first_param.size() == size_t(cuts[s + 1] - cuts[s] + 1));
        for (const auto& p : l.params) {
          const ParamInfo* f = full.find(p.name);
          REQUIRE(f);
          CHECK(f->numel() == p.numel());
          if (!p.replica) names.push_back(p.name);
        }
      }
      std::vector<std::string> full_names;
      for (const auto& p : full.params) full_names.push_back(p.name);
      CHECK(names == full_names);
    }
  }
}

TEST_CASE("layout: tied embeddings") {
  const LlamaConfig c = small_config(true);
  ParamLayout full = make_param_layout(c, 0, 6);
  CHECK(full.find("lm_head") == nullptr);
  CHECK(full.params.back().name == "norm");
  CHECK(full.params[0].tied_key == "embed");
  CHECK(!full.params[0].replica);

  ParamLayout head = make_param_layout(c, 4, 6);  // last decoder layer + head, no embedding
  const ParamInfo& r = head.params.back();
  CHECK(r.name == "embed_tokens");
  CHECK(r.replica);
  CHECK(r.tied_key == "embed");
  CHECK(r.layer == 5);
  CHECK(r.rows == 50);
  REQUIRE(r.hf.size() == 1);
  CHECK(r.hf[0].hf_name == "model.embed_tokens.weight");

  auto counts = layer_param_counts(c);
  CHECK(counts[5] == 32);  // the head counts its norm only: the table is the embedding's
  CHECK(make_param_layout(c, 5, 6).total == 32 + 50 * 32);
}

TEST_CASE("init: normal(0, initializer_range) weights, unit norms, independent of the split") {
  for (bool tied : {false, true}) {
    LlamaConfig c = small_config(tied);
    c.initializer_range = 0.05;
    ParamLayout full = make_param_layout(c, 0, 6);
    std::vector<float> all(full.total);
    init_params(c, full, 1234, all.data());

    for (const auto& p : full.params) {
      CAPTURE(p.name);
      const float* x = all.data() + p.offset;
      if (p.cols == 1) {
        for (int64_t i = 0; i < p.numel(); ++i) REQUIRE(x[i] == 1.0f);
        continue;
      }
      double sum = 0, sq = 0;
      for (int64_t i = 0; i < p.numel(); ++i) sum += x[i], sq += double(x[i]) * x[i];
      const double n = double(p.numel()), mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
      // At least 768 samples: the sample mean is within 4.5 standard errors, the std within 12%.
      CHECK(std::fabs(mean) < 4.5 * 0.05 / std::sqrt(n));
      CHECK(sd == doctest::Approx(0.05).epsilon(0.12));
    }

    for (std::vector<int> cuts : {std::vector<int>{0, 3, 6}, {0, 1, 4, 5, 6}, {0, 2, 6}}) {
      for (size_t s = 0; s + 1 < cuts.size(); ++s) {
        ParamLayout l = make_param_layout(c, cuts[s], cuts[s + 1]);
        std::vector<float> part(l.total);
        init_params(c, l, 1234, part.data());
        for (const auto& p : l.params) {
          const ParamInfo* f = full.find(p.name);
          REQUIRE(f);
          bool same = std::equal(part.begin() + p.offset, part.begin() + p.offset + p.numel(),
                                 all.begin() + f->offset);
          CHECK_MESSAGE(same, p.name << " differs between the split and the whole model");
        }
      }
    }

    std::vector<float> other(full.total);
    init_params(c, full, 1235, other.data());
    const ParamInfo* q = full.find("layers.0.qkv");
    CHECK(!std::equal(all.begin() + q->offset, all.begin() + q->offset + q->numel(), other.begin() + q->offset));
    const ParamInfo* q1 = full.find("layers.1.qkv");
    CHECK(!std::equal(all.begin() + q->offset, all.begin() + q->offset + 64, all.begin() + q1->offset));
  }
}
