#include "runtime/embedded_defaults.h"

namespace fm::runtime {

std::string_view embedded_tiny_model_config_json() {
  return R"json({
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": 128,
  "intermediate_size": 384,
  "num_hidden_layers": 4,
  "num_attention_heads": 4,
  "num_key_value_heads": 2,
  "vocab_size": 512,
  "max_position_embeddings": 512,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "rope_scaling": null,
  "hidden_act": "silu",
  "initializer_range": 0.02,
  "tie_word_embeddings": false,
  "attention_bias": false,
  "mlp_bias": false,
  "bos_token_id": 256,
  "eos_token_id": 257,
  "torch_dtype": "float32"
})json";
}

}  // namespace fm::runtime
