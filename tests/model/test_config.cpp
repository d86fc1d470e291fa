// config.json parsing: values, defaults, both RoPE spellings, refusals (message and where), and the
// published model configs of configs/models with their parameter counts.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <numeric>
#include <string>

#include "model/llama_config.h"
#include "model/param_layout.h"
#include "runtime/base/error.h"

using fm::model::LlamaConfig;
using fm::model::parse_llama_config;

namespace {

// A valid config with `overrides` replacing (or, with an empty value, removing) keys.
std::string config_text(const std::map<std::string, std::string>& overrides = {}) {
  std::map<std::string, std::string> keys = {
      {"hidden_size", "64"},         {"intermediate_size", "160"},   {"num_hidden_layers", "3"},
      {"num_attention_heads", "4"},  {"num_key_value_heads", "2"},   {"vocab_size", "100"},
      {"max_position_embeddings", "256"}, {"rms_norm_eps", "1e-5"},  {"hidden_act", "\"silu\""},
      {"model_type", "\"llama\""},   {"tie_word_embeddings", "false"}};
  for (const auto& [k, v] : overrides) {
    if (v.empty()) keys.erase(k);
    else keys[k] = v;
  }
  std::string s = "{";
  for (const auto& [k, v] : keys) s += (s.size() > 1 ? ",\n\"" : "\n\"") + k + "\": " + v;
  return s + "\n}";
}

LlamaConfig parse(const std::map<std::string, std::string>& overrides = {}) {
  return parse_llama_config(config_text(overrides), "cfg.json");
}

// Parsing must fail with an InputError whose `where` names the file and `key`, and whose message
// contains `what`.
void expect_refused(const std::map<std::string, std::string>& overrides, const std::string& key,
                    const std::string& what) {
  CAPTURE(key);
  try {
    parse(overrides);
    FAIL("accepted a config that must be refused");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "cfg.json: " + key);
    CHECK(e.problem().find(what) != std::string::npos);
    CHECK(!e.hint().empty());
  }
}

std::string source_dir() {
  const char* s = std::getenv("FM_SOURCE_DIR");
  REQUIRE_MESSAGE(s, "FM_SOURCE_DIR is unset: run the tests with meson test or scripts/test.sh");
  return s;
}

}  // namespace

TEST_CASE("config: values and defaults") {
  LlamaConfig c = parse();
  CHECK(c.hidden_size == 64);
  CHECK(c.intermediate_size == 160);
  CHECK(c.num_hidden_layers == 3);
  CHECK(c.num_attention_heads == 4);
  CHECK(c.num_key_value_heads == 2);
  CHECK(c.head_dim == 16);
  CHECK(c.vocab_size == 100);
  CHECK(c.rms_norm_eps == doctest::Approx(1e-5));
  CHECK(c.rope_theta == 10000.0);
  CHECK(c.rope_scaling.rope_type.empty());
  CHECK(c.initializer_range == doctest::Approx(0.02));
  CHECK(c.bos_token_id == -1);
  CHECK(c.source == "cfg.json");

  LlamaConfig d = parse({{"num_key_value_heads", ""}, {"head_dim", "32"}, {"bos_token_id", "1"},
                         {"eos_token_id", "[128001, 128008]"}, {"rope_theta", "500000"}});
  CHECK(d.num_key_value_heads == 4);  // defaults to the head count
  CHECK(d.head_dim == 32);            // explicit head_dim wins over hidden/heads
  CHECK(d.q_dim() == 128);
  CHECK(d.bos_token_id == 1);
  CHECK(d.eos_token_id == 128001);  // a list: the first id
  CHECK(d.rope_theta == 500000.0);

  // null means absent, as transformers writes it
  LlamaConfig e = parse({{"num_key_value_heads", "null"}, {"rope_scaling", "null"}, {"pad_token_id", "null"},
                         {"sliding_window", "null"}, {"dtype", "\"bfloat16\""}});
  CHECK(e.num_key_value_heads == 4);
  CHECK(e.torch_dtype == "bfloat16");
}

TEST_CASE("config: rope_scaling (transformers 4) and rope_parameters (transformers 5)") {
  const std::string llama3 =
      R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 8192})";
  LlamaConfig a = parse({{"rope_theta", "500000.0"}, {"rope_scaling", llama3}});
  CHECK(a.rope_scaling.rope_type == "llama3");
  CHECK(a.rope_scaling.factor == 8.0);
  CHECK(a.rope_scaling.low_freq_factor == 1.0);
  CHECK(a.rope_scaling.high_freq_factor == 4.0);
  CHECK(a.rope_scaling.original_max_position_embeddings == 8192);
  CHECK(a.rope_theta == 500000.0);

  // 5.x: everything inside rope_parameters, rope_theta included
  const std::string params5 =
      R"({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})";
  LlamaConfig b = parse({{"rope_parameters", params5}});
  CHECK(b.rope_scaling.rope_type == "llama3");
  CHECK(b.rope_theta == 500000.0);
  CHECK(b.rope_scaling.original_max_position_embeddings == 8192);

  LlamaConfig c = parse({{"rope_parameters", R"({"rope_type": "default", "rope_theta": 123.0})"}});
  CHECK(c.rope_scaling.rope_type.empty());
  CHECK(c.rope_theta == 123.0);

  // the old "type" spelling, and original_max_position_embeddings defaulting to max positions
  LlamaConfig d = parse({{"rope_scaling", R"({"type": "llama3", "factor": 2, "low_freq_factor": 1,
                                             "high_freq_factor": 4})"}});
  CHECK(d.rope_scaling.rope_type == "llama3");
  CHECK(d.rope_scaling.original_max_position_embeddings == 256);

  // both spellings, agreeing
  LlamaConfig e = parse({{"rope_scaling", llama3}, {"rope_parameters", params5}});
  CHECK(e.rope_theta == 500000.0);
}

TEST_CASE("config: refusals name file and key") {
  expect_refused({{"attention_bias", "true"}}, "attention_bias", "bias");
  expect_refused({{"mlp_bias", "true"}}, "mlp_bias", "bias");
  expect_refused({{"pretraining_tp", "2"}}, "pretraining_tp", "only 1");
  expect_refused({{"hidden_act", "\"gelu\""}}, "hidden_act", "gelu");
  expect_refused({{"rope_scaling", R"({"rope_type": "yarn", "factor": 4})"}}, "rope_scaling.rope_type", "yarn");
  expect_refused({{"rope_parameters", R"({"rope_type": "linear", "factor": 4})"}}, "rope_parameters.rope_type",
                 "linear");
  expect_refused({{"rope_scaling", R"({"rope_type": "llama3", "factor": 8})"}}, "rope_scaling.low_freq_factor",
                 "missing");
  expect_refused({{"rope_scaling", R"({"rope_type": "llama3", "factr": 8})"}}, "rope_scaling.factr", "unknown");
  expect_refused({{"rope_scaling", R"({"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
                   "high_freq_factor": 1})"}},
                 "rope_scaling.high_freq_factor", "larger");
  expect_refused({{"rope_scaling", R"({"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                   "high_freq_factor": 4})"},
                  {"rope_parameters", R"({"rope_type": "default"})"}},
                 "rope_parameters", "disagrees");
  expect_refused({{"sliding_window", "4096"}}, "sliding_window", "sliding-window");
  expect_refused({{"model_type", "\"mistral\""}, {"sliding_window", "128"}}, "sliding_window", "sliding-window");
  expect_refused({{"num_attention_heads", "5"}}, "num_attention_heads", "does not divide hidden_size");
  expect_refused({{"num_key_value_heads", "3"}}, "num_key_value_heads", "does not divide num_attention_heads");
  expect_refused({{"head_dim", "15"}}, "head_dim", "odd");
  expect_refused({{"hidden_size", "0"}}, "hidden_size", "positive");
  expect_refused({{"vocab_size", "-3"}}, "vocab_size", "positive");
  expect_refused({{"intermediate_size", ""}}, "intermediate_size", "missing");
  expect_refused({{"hidden_size", "\"64\""}}, "hidden_size", "expected an integer");
  expect_refused({{"num_hidden_layers", "2.5"}}, "num_hidden_layers", "expected an integer");
  expect_refused({{"tie_word_embeddings", "1"}}, "tie_word_embeddings", "true or false");
  expect_refused({{"rms_norm_eps", "\"small\""}}, "rms_norm_eps", "expected a number");
  expect_refused({{"rope_theta", "0"}}, "rope_theta", "positive");
  expect_refused({{"model_type", "\"gpt2\""}}, "model_type", "gpt2");
  expect_refused({{"attention_dropout", "0.1"}}, "attention_dropout", "dropout");
  expect_refused({{"quantization_config", "{}"}}, "quantization_config", "quantized");
  expect_refused({{"torch_dtype", "\"int8\""}}, "torch_dtype", "int8");
}

TEST_CASE("config: metadata is accepted, malformed JSON is located") {
  LlamaConfig c = parse({{"architectures", R"(["LlamaForCausalLM"])"}, {"transformers_version", "\"5.23.0\""},
                         {"use_cache", "true"}, {"_name_or_path", "\"x\""}, {"attention_dropout", "0.0"},
                         {"pad_token_id", "0"}, {"some_future_key", "1"}});
  CHECK(c.hidden_size == 64);

  try {
    parse_llama_config("{\n  \"hidden_size\": 64,\n  oops\n}", "bad.json");
    FAIL("accepted broken JSON");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "bad.json:3:3");
    CHECK(e.problem().find("invalid JSON") != std::string::npos);
  }
  try {
    fm::model::load_llama_config("/nonexistent/dir/config.json");
    FAIL("loaded a missing file");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "/nonexistent/dir/config.json");
  }
}

TEST_CASE("config: to_hf_config_json round-trips through our parser") {
  LlamaConfig a = parse({{"rope_parameters", R"({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 128})"},
                         {"tie_word_embeddings", "true"}, {"bos_token_id", "5"}, {"eos_token_id", "6"}});
  LlamaConfig b = parse_llama_config(fm::model::to_hf_config_json(a, "bfloat16"), "out.json");
  CHECK(b.hidden_size == a.hidden_size);
  CHECK(b.intermediate_size == a.intermediate_size);
  CHECK(b.num_hidden_layers == a.num_hidden_layers);
  CHECK(b.num_attention_heads == a.num_attention_heads);
  CHECK(b.num_key_value_heads == a.num_key_value_heads);
  CHECK(b.head_dim == a.head_dim);
  CHECK(b.vocab_size == a.vocab_size);
  CHECK(b.rms_norm_eps == a.rms_norm_eps);
  CHECK(b.rope_theta == a.rope_theta);
  CHECK(b.rope_scaling.rope_type == "llama3");
  CHECK(b.rope_scaling.factor == 8.0);
  CHECK(b.rope_scaling.original_max_position_embeddings == 128);
  CHECK(b.tie_word_embeddings);
  CHECK(b.bos_token_id == 5);
  CHECK(b.eos_token_id == 6);
  CHECK(b.torch_dtype == "bfloat16");
}

TEST_CASE("configs/models: published configs load with their published parameter counts") {
  // Parameter counts as published with the checkpoints (sum of their safetensors tensors).
  const std::map<std::string, int64_t> published = {
      {"tinyllama-1.1b.json", 1'100'048'384},  {"llama-2-7b.json", 6'738'415'616},
      {"llama-2-13b.json", 13'015'864'320},    {"llama-2-70b.json", 68'976'648'192},
      {"llama-3-8b.json", 8'030'261'248},      {"llama-3.1-8b.json", 8'030'261'248},
      {"mistral-7b-v0.3.json", 7'248'023'552}, {"tiny.json", 918'656}};
  for (const auto& [file, count] : published) {
    CAPTURE(file);
    LlamaConfig c = fm::model::load_llama_config(source_dir() + "/configs/models/" + file);
    auto counts = fm::model::layer_param_counts(c);
    CHECK(std::accumulate(counts.begin(), counts.end(), int64_t{0}) == count);
    auto full = fm::model::make_param_layout(c, 0, int(c.num_hidden_layers) + 2);
    CHECK(full.total == count);
  }
  LlamaConfig l31 = fm::model::load_llama_config(source_dir() + "/configs/models/llama-3.1-8b.json");
  CHECK(l31.rope_scaling.rope_type == "llama3");
  CHECK(l31.rope_theta == 500000.0);
  CHECK(l31.eos_token_id == 128001);
  LlamaConfig tiny = fm::model::load_llama_config(source_dir() + "/configs/models/tiny.json");
  CHECK(tiny.vocab_size == 512);
  CHECK(!tiny.tie_word_embeddings);
}
