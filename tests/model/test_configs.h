// Small LLaMA configs for the model and I/O unit tests.
#pragma once

#include <cstdint>

#include "model/llama_config.h"

namespace fm::model::testing {

struct Sizes {
  int64_t hidden = 32, intermediate = 48, layers = 4, heads = 4, kv_heads = 2, head_dim = 8, vocab = 50;
  bool tied = false;
};

inline LlamaConfig make_config(const Sizes& s) {
  LlamaConfig c;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.intermediate;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.vocab_size = s.vocab;
  c.tie_word_embeddings = s.tied;
  c.rms_norm_eps = 1e-5;
  return c;
}

}  // namespace fm::model::testing
