#include "model/param_layout.h"

#include "runtime/base/error.h"

namespace fm::model {

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const auto& p : params)
    if (p.name == name) return &p;
  return nullptr;
}

namespace {

struct Builder {
  ParamLayout& layout;
  int layer = 0;

  ParamInfo& add(std::string name, int64_t rows, int64_t cols, bool decay) {
    ParamInfo p;
    p.name = std::move(name);
    p.rows = rows;
    p.cols = cols;
    p.offset = layout.total;
    p.layer = layer;
    p.decay = decay;
    layout.total += rows * cols;
    layout.params.push_back(std::move(p));
    return layout.params.back();
  }
  // A tensor that is exactly one HF tensor.
  ParamInfo& add_hf(std::string name, const std::string& hf_name, int64_t rows, int64_t cols, bool decay) {
    ParamInfo& p = add(std::move(name), rows, cols, decay);
    p.hf.push_back({hf_name, 0, rows});
    return p;
  }
};

}  // namespace

ParamLayout make_param_layout(const LlamaConfig& c, int layer_begin, int layer_end) {
  const int64_t L = c.num_hidden_layers;
  FM_CHECK(0 <= layer_begin && layer_begin < layer_end && layer_end <= L + 2, "bad layer range");
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t Q = c.q_dim(), KV = c.kv_dim();

  ParamLayout layout;
  layout.layer_begin = layer_begin;
  layout.layer_end = layer_end;
  Builder b{layout};
  for (int layer = layer_begin; layer < layer_end; ++layer) {
    b.layer = layer;
    layout.layer_first_param.push_back(layout.params.size());
    if (layer == 0) {
      ParamInfo& e = b.add_hf("embed_tokens", "model.embed_tokens.weight", V, C, true);
      if (c.tie_word_embeddings) e.tied_key = "embed";
    } else if (layer <= L) {
      const std::string hf = "model.layers." + std::to_string(layer - 1) + ".";
      const std::string ours = "layers." + std::to_string(layer - 1) + ".";
      b.add_hf(ours + "input_layernorm", hf + "input_layernorm.weight", C, 1, false);
      ParamInfo& qkv = b.add(ours + "qkv", Q + 2 * KV, C, true);
      qkv.hf = {{hf + "self_attn.q_proj.weight", 0, Q},
                {hf + "self_attn.k_proj.weight", Q, KV},
                {hf + "self_attn.v_proj.weight", Q + KV, KV}};
      b.add_hf(ours + "o_proj", hf + "self_attn.o_proj.weight", C, Q, true);
      b.add_hf(ours + "post_attention_layernorm", hf + "post_attention_layernorm.weight", C, 1, false);
      ParamInfo& gateup = b.add(ours + "gateup", 2 * F, C, true);
      gateup.hf = {{hf + "mlp.gate_proj.weight", 0, F}, {hf + "mlp.up_proj.weight", F, F}};
      b.add_hf(ours + "down_proj", hf + "mlp.down_proj.weight", C, F, true);
    } else {
      b.add_hf("norm", "model.norm.weight", C, 1, false);
      if (!c.tie_word_embeddings) {
        b.add_hf("lm_head", "lm_head.weight", V, C, true);
      } else if (layer_begin > 0) {
        // The head stage without the embedding keeps a replica of the table (same name and values).
        ParamInfo& r = b.add_hf("embed_tokens", "model.embed_tokens.weight", V, C, true);
        r.tied_key = "embed";
        r.replica = true;
      }
    }
  }
  layout.layer_first_param.push_back(layout.params.size());
  return layout;
}

std::vector<int64_t> layer_param_counts(const LlamaConfig& c) {
  const int64_t L = c.num_hidden_layers;
  const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  std::vector<int64_t> counts(L + 2);
  counts[0] = V * C;
  const int64_t per_layer = 2 * C + (c.q_dim() + 2 * c.kv_dim()) * C + C * c.q_dim() + 3 * C * F;
  for (int64_t l = 1; l <= L; ++l) counts[l] = per_layer;
  counts[L + 1] = C + (c.tie_word_embeddings ? 0 : V * C);
  return counts;
}

}  // namespace fm::model
