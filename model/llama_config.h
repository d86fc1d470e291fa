// A LLaMA-family model as described by a Hugging Face `config.json` (LlamaConfig fields).
//
// load_llama_config() validates every field the math depends on and refuses what fmengine does not
// compute (attention/MLP biases, activations other than silu, rope scaling other than llama3, ...)
// with an InputError naming file and key. Fields that do not change the math (transformers_version,
// use_cache, ...) are accepted; keys it does not know at all are reported with a warning, since
// config.json files carry version-specific metadata.
#pragma once

#include <cstdint>
#include <string>

namespace fm::model {

struct RopeScalingConfig {
  std::string rope_type;  // "" (none) or "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  int64_t hidden_size = 0;          // C
  int64_t intermediate_size = 0;    // F
  int64_t num_hidden_layers = 0;    // L
  int64_t num_attention_heads = 0;  // H
  int64_t num_key_value_heads = 0;  // Hkv (defaults to H)
  int64_t head_dim = 0;             // D (defaults to C / H)
  int64_t vocab_size = 0;           // V
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScalingConfig rope_scaling;
  bool tie_word_embeddings = false;
  double initializer_range = 0.02;  // std of the random init (normal), as transformers does
  int64_t bos_token_id = -1;        // -1 when absent
  int64_t eos_token_id = -1;
  std::string torch_dtype = "float32";  // recorded for export; compute dtype comes from the run
  std::string source;               // file it was read from, for messages

  int64_t num_layers_total() const { return num_hidden_layers + 2; }  // embedding + L + head
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
};

// Reads and validates `path` (a config.json file, or a directory holding one).
LlamaConfig load_llama_config(const std::string& path);
// The same from JSON text; `source` is used in messages.
LlamaConfig parse_llama_config(const std::string& json_text, const std::string& source);
// Serialises to Hugging Face config.json text (architectures LlamaForCausalLM, model_type llama).
std::string to_hf_config_json(const LlamaConfig& c, const std::string& torch_dtype);

}  // namespace fm::model
