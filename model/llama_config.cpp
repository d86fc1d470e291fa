#include "model/llama_config.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"

namespace fm::model {
namespace {

using Json = rapidjson::Value;

// Keys whose value changes the math: each is read (and checked) below.
const std::vector<std::string> kMathKeys = {
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "head_dim", "vocab_size", "max_position_embeddings", "rms_norm_eps", "rope_theta", "rope_scaling",
    "rope_parameters", "tie_word_embeddings", "hidden_act", "initializer_range", "bos_token_id",
    "eos_token_id", "torch_dtype", "dtype", "attention_bias", "mlp_bias", "pretraining_tp",
    "sliding_window", "attention_dropout", "model_type", "quantization_config", "partial_rotary_factor"};

// Keys that only describe how a program used the model (generation, bookkeeping, output options).
const std::set<std::string> kMetadataKeys = {
    "architectures", "transformers_version", "use_cache", "_name_or_path", "pad_token_id",
    "output_attentions", "output_hidden_states", "return_dict", "is_encoder_decoder", "tokenizer_class",
    "id2label", "label2id", "problem_type", "torchscript", "use_return_dict", "chunk_size_feed_forward",
    "is_decoder", "add_cross_attention", "tie_encoder_decoder", "prefix", "sep_token_id",
    "decoder_start_token_id", "task_specific_params", "finetuning_task", "cross_attention_hidden_size",
    "_attn_implementation", "_attn_implementation_autoset", "max_length", "min_length", "do_sample",
    "early_stopping", "num_beams", "temperature", "top_k", "top_p", "repetition_penalty",
    "length_penalty", "no_repeat_ngram_size", "num_return_sequences", "bad_words_ids", "use_bfloat16",
    "_from_model_config", "max_sequence_length", "max_window_layers", "use_sliding_window"};

class Reader {
 public:
  Reader(const Json& root, std::string source) : root_(root), source_(std::move(source)) {}

  std::string where(const std::string& key) const { return source_ + ": " + key; }

  [[noreturn]] void fail(const std::string& key, const std::string& what, const std::string& hint = {}) const {
    throw InputError(where(key), what, hint);
  }

  // Present and not null.
  const Json* get(const Json& obj, const std::string& key) const {
    auto it = obj.FindMember(key.c_str());
    if (it == obj.MemberEnd() || it->value.IsNull()) return nullptr;
    return &it->value;
  }
  const Json* get(const std::string& key) const { return get(root_, key); }

  int64_t integer(const Json& v, const std::string& key) const {
    if (v.IsInt64()) return v.GetInt64();
    if (v.IsDouble() && std::floor(v.GetDouble()) == v.GetDouble() && std::fabs(v.GetDouble()) < 9e15)
      return static_cast<int64_t>(v.GetDouble());
    fail(key, "expected an integer, got " + describe(v), "write a whole number without quotes, e.g. 4096");
  }
  double number(const Json& v, const std::string& key) const {
    if (!v.IsNumber()) fail(key, "expected a number, got " + describe(v), "write a number without quotes, e.g. 1e-05");
    return v.GetDouble();
  }
  bool boolean(const Json& v, const std::string& key) const {
    if (!v.IsBool()) fail(key, "expected true or false, got " + describe(v), "write true or false without quotes");
    return v.GetBool();
  }
  std::string string(const Json& v, const std::string& key) const {
    if (!v.IsString()) fail(key, "expected a string, got " + describe(v), "write the value in double quotes");
    return v.GetString();
  }

  int64_t positive(const std::string& key, bool required, int64_t fallback) const {
    const Json* v = get(key);
    if (!v) {
      if (required) fail(key, "missing", "a LLaMA config.json sets " + key);
      return fallback;
    }
    int64_t x = integer(*v, key);
    if (x <= 0) fail(key, "must be positive, got " + std::to_string(x), "sizes and counts are positive integers");
    return x;
  }

  static std::string describe(const Json& v) {
    if (v.IsNull()) return "null";
    if (v.IsBool()) return v.GetBool() ? "true" : "false";
    if (v.IsString()) return std::string("\"") + v.GetString() + "\"";
    if (v.IsNumber()) {
      std::ostringstream os;
      os << v.GetDouble();
      return os.str();
    }
    if (v.IsArray()) return "an array";
    return "an object";
  }

  const Json& root() const { return root_; }

 private:
  const Json& root_;
  std::string source_;
};

// A token id: an integer, or a list whose first element is taken (LLaMA 3 lists several eos ids).
int64_t token_id(const Reader& r, const std::string& key) {
  const Json* v = r.get(key);
  if (!v) return -1;
  if (v->IsArray()) {
    if (v->Empty()) return -1;
    return r.integer((*v)[0], key + "[0]");
  }
  return r.integer(*v, key);
}

const std::set<std::string> kRopeKeys = {"rope_type", "type", "rope_theta", "factor", "low_freq_factor",
                                         "high_freq_factor", "original_max_position_embeddings",
                                         "partial_rotary_factor"};

struct RopeSpec {
  bool present = false;
  std::string type;  // "" or "llama3"
  double theta = 0;  // 0 when the object does not set it
  double factor = 1, low = 1, high = 4;
  int64_t original_max = 0;  // 0 when absent
};

// Parses a `rope_scaling` or `rope_parameters` object (transformers 4.x and 5.x spell it differently).
RopeSpec parse_rope(const Reader& r, const std::string& key) {
  RopeSpec s;
  const Json* v = r.get(key);
  if (!v) return s;
  if (!v->IsObject())
    r.fail(key, "expected an object or null, got " + Reader::describe(*v), "e.g. {\"rope_type\": \"default\"}");
  s.present = true;
  for (auto it = v->MemberBegin(); it != v->MemberEnd(); ++it) {
    std::string k = it->name.GetString();
    if (!kRopeKeys.count(k))
      r.fail(key + "." + k, "unknown rope setting",
             suggestion_hint(k, std::vector<std::string>(kRopeKeys.begin(), kRopeKeys.end())));
  }
  std::string type = "default";
  if (const Json* t = r.get(*v, "rope_type")) type = r.string(*t, key + ".rope_type");
  else if (const Json* t2 = r.get(*v, "type")) type = r.string(*t2, key + ".type");
  if (type == "default") {
    s.type = "";
  } else if (type == "llama3") {
    s.type = "llama3";
  } else {
    r.fail(key + ".rope_type", "rope type \"" + type + "\" is not supported",
           "fmengine computes plain RoPE (\"default\") and LLaMA 3.1 scaling (\"llama3\")");
  }
  if (const Json* t = r.get(*v, "rope_theta")) {
    s.theta = r.number(*t, key + ".rope_theta");
    if (!(s.theta > 0)) r.fail(key + ".rope_theta", "must be positive", "LLaMA uses 10000, LLaMA 3 500000");
  }
  if (const Json* p = r.get(*v, "partial_rotary_factor")) {
    if (r.number(*p, key + ".partial_rotary_factor") != 1.0)
      r.fail(key + ".partial_rotary_factor", "partial rotary embeddings are not supported",
             "LLaMA rotates the whole head (1.0)");
  }
  if (s.type == "llama3") {
    auto need = [&](const char* name) {
      const Json* x = r.get(*v, name);
      if (!x) r.fail(key + "." + name, "missing", "llama3 rope scaling sets factor, low_freq_factor and high_freq_factor");
      return r.number(*x, key + "." + name);
    };
    s.factor = need("factor");
    s.low = need("low_freq_factor");
    s.high = need("high_freq_factor");
    if (!(s.factor >= 1)) r.fail(key + ".factor", "must be at least 1", "LLaMA 3.1 uses 8.0");
    if (!(s.low > 0)) r.fail(key + ".low_freq_factor", "must be positive", "LLaMA 3.1 uses 1.0");
    if (!(s.high > s.low)) r.fail(key + ".high_freq_factor", "must be larger than low_freq_factor", "LLaMA 3.1 uses 4.0 (and low_freq_factor 1.0)");
    if (const Json* o = r.get(*v, "original_max_position_embeddings")) {
      s.original_max = r.integer(*o, key + ".original_max_position_embeddings");
      if (s.original_max <= 0) r.fail(key + ".original_max_position_embeddings", "must be positive", "LLaMA 3.1 uses 8192");
    }
  }
  return s;
}

bool same_rope(const RopeSpec& a, const RopeSpec& b) {
  return a.type == b.type && (a.theta == b.theta || a.theta == 0 || b.theta == 0) && a.factor == b.factor &&
         a.low == b.low && a.high == b.high && a.original_max == b.original_max;
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the model config", "give a config.json file or a directory holding one");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

LlamaConfig load_llama_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::string file = path;
  std::error_code ec;
  if (fs::is_directory(path, ec)) file = (fs::path(path) / "config.json").string();
  if (!fs::exists(file, ec))
    throw InputError(file, "no such file", "give a Hugging Face config.json or a directory holding one");
  return parse_llama_config(read_file_text(file), file);
}

LlamaConfig parse_llama_config(const std::string& json_text, const std::string& source) {
  rapidjson::Document doc;
  doc.Parse(json_text.c_str(), json_text.size());
  if (doc.HasParseError()) {
    LineCol lc = line_col_at(json_text, doc.GetErrorOffset());
    throw InputError(source + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col),
                     std::string("invalid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()));
  }
  if (!doc.IsObject()) throw InputError(source, "expected a JSON object (a Hugging Face config.json)");
  Reader r(doc, source);
  LlamaConfig c;
  c.source = source;

  // ---- refusals first: what would make our math differ from the checkpoint's -------------------
  std::string model_type = "llama";
  if (const Json* v = r.get("model_type")) model_type = r.string(*v, "model_type");
  if (model_type != "llama" && model_type != "mistral")
    r.fail("model_type", "model type \"" + model_type + "\" is not supported",
           "fmengine trains LLaMA-family models (model_type \"llama\" or \"mistral\")");
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    if (const Json* v = r.get(key); v && r.boolean(*v, key))
      r.fail(key, "biases in the projections are not supported", "LLaMA projections have no bias: set false");
  }
  if (const Json* v = r.get("pretraining_tp"); v && r.integer(*v, "pretraining_tp") != 1)
    r.fail("pretraining_tp", "only 1 is supported", "pretraining_tp > 1 changes the rounding of the projections");
  if (const Json* v = r.get("hidden_act")) {
    std::string act = r.string(*v, "hidden_act");
    if (act != "silu")
      r.fail("hidden_act", "activation \"" + act + "\" is not supported", "LLaMA's MLP is SwiGLU: \"silu\"");
  }
  if (const Json* v = r.get("attention_dropout"); v && r.number(*v, "attention_dropout") != 0.0)
    r.fail("attention_dropout", "attention dropout is not supported", "set 0.0");
  if (r.get("quantization_config"))
    r.fail("quantization_config", "quantized checkpoints are not supported", "use a float checkpoint");
  if (const Json* v = r.get("partial_rotary_factor"); v && r.number(*v, "partial_rotary_factor") != 1.0)
    r.fail("partial_rotary_factor", "partial rotary embeddings are not supported", "LLaMA rotates the whole head (1.0)");

  // ---- sizes ---------------------------------------------------------------------------------
  c.hidden_size = r.positive("hidden_size", true, 0);
  c.intermediate_size = r.positive("intermediate_size", true, 0);
  c.num_hidden_layers = r.positive("num_hidden_layers", true, 0);
  c.num_attention_heads = r.positive("num_attention_heads", true, 0);
  c.vocab_size = r.positive("vocab_size", true, 0);
  c.num_key_value_heads = r.positive("num_key_value_heads", false, c.num_attention_heads);
  c.max_position_embeddings = r.positive("max_position_embeddings", false, 2048);
  if (r.get("head_dim")) {
    c.head_dim = r.positive("head_dim", false, 0);
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      r.fail("num_attention_heads",
             "does not divide hidden_size (" + std::to_string(c.hidden_size) + " / " +
                 std::to_string(c.num_attention_heads) + ")",
             "choose a head count that divides hidden_size, or set head_dim");
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    r.fail("num_key_value_heads",
           "does not divide num_attention_heads (" + std::to_string(c.num_attention_heads) + " / " +
               std::to_string(c.num_key_value_heads) + ")",
           "grouped-query attention shares each key/value head among an equal number of query heads");
  if (c.head_dim % 2 != 0)
    r.fail(r.get("head_dim") ? "head_dim" : "num_attention_heads",
           "head dimension " + std::to_string(c.head_dim) + " is odd", "RoPE rotates pairs of channels: use an even head_dim");
  if (const Json* v = r.get("sliding_window")) {
    int64_t w = r.integer(*v, "sliding_window");
    if (model_type == "llama" || w < c.max_position_embeddings)
      r.fail("sliding_window", "sliding-window attention is not supported",
             "fmengine computes full causal attention: set sliding_window to null");
  }

  // ---- numerics --------------------------------------------------------------------------------
  if (const Json* v = r.get("rms_norm_eps")) {
    c.rms_norm_eps = r.number(*v, "rms_norm_eps");
    if (!(c.rms_norm_eps > 0)) r.fail("rms_norm_eps", "must be positive", "LLaMA uses 1e-05 or 1e-06");
  }
  if (const Json* v = r.get("initializer_range")) {
    c.initializer_range = r.number(*v, "initializer_range");
    if (!(c.initializer_range >= 0)) r.fail("initializer_range", "must not be negative", "transformers uses 0.02");
  }
  if (const Json* v = r.get("tie_word_embeddings")) c.tie_word_embeddings = r.boolean(*v, "tie_word_embeddings");

  // ---- RoPE: `rope_theta` + `rope_scaling` (transformers 4.x) or `rope_parameters` (5.x) ---------
  if (const Json* v = r.get("rope_theta")) {
    c.rope_theta = r.number(*v, "rope_theta");
    if (!(c.rope_theta > 0)) r.fail("rope_theta", "must be positive", "LLaMA uses 10000, LLaMA 3 500000");
  }
  RopeSpec scaling = parse_rope(r, "rope_scaling");
  RopeSpec params = parse_rope(r, "rope_parameters");
  if (scaling.present && params.present && !same_rope(scaling, params))
    r.fail("rope_parameters", "disagrees with rope_scaling",
           "keep one of them (transformers 5 writes rope_parameters, 4.x wrote rope_scaling)");
  const RopeSpec& rope = params.present ? params : scaling;
  if (rope.present) {
    if (rope.theta > 0) c.rope_theta = rope.theta;
    c.rope_scaling.rope_type = rope.type;
    if (rope.type == "llama3") {
      c.rope_scaling.factor = rope.factor;
      c.rope_scaling.low_freq_factor = rope.low;
      c.rope_scaling.high_freq_factor = rope.high;
      c.rope_scaling.original_max_position_embeddings =
          rope.original_max > 0 ? rope.original_max : c.max_position_embeddings;
    }
  }

  // ---- ids and dtype (recorded, not math) ---------------------------------------------------------
  c.bos_token_id = token_id(r, "bos_token_id");
  c.eos_token_id = token_id(r, "eos_token_id");
  for (const char* key : {"dtype", "torch_dtype"}) {
    if (const Json* v = r.get(key)) {
      std::string d = r.string(*v, key);
      if (d != "float32" && d != "bfloat16" && d != "float16")
        r.fail(key, "dtype \"" + d + "\" is not supported", "float32, bfloat16 or float16");
      c.torch_dtype = d;
      break;  // transformers 5 writes `dtype`; it wins over a stale `torch_dtype`
    }
  }

  // ---- keys we do not know: warn once, listing them -------------------------------------------------
  std::vector<std::string> unknown;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    std::string k = it->name.GetString();
    bool known = kMetadataKeys.count(k) > 0;
    for (const auto& m : kMathKeys) known = known || m == k;
    if (!known) unknown.push_back(k);
  }
  if (!unknown.empty())
    log::warn("{}: ignoring keys fmengine does not know: {}", source, join(unknown, ", "));
  return c;
}

std::string to_hf_config_json(const LlamaConfig& c, const std::string& torch_dtype) {
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  auto integer = [&](const char* k, int64_t v) { w.Key(k); w.Int64(v); };
  auto number = [&](const char* k, double v) { w.Key(k); w.Double(v); };
  auto boolean = [&](const char* k, bool v) { w.Key(k); w.Bool(v); };
  auto string = [&](const char* k, const std::string& v) { w.Key(k); w.String(v.c_str()); };
  const bool llama3 = c.rope_scaling.rope_type == "llama3";
  auto rope_settings = [&] {
    number("factor", c.rope_scaling.factor);
    number("low_freq_factor", c.rope_scaling.low_freq_factor);
    number("high_freq_factor", c.rope_scaling.high_freq_factor);
    integer("original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings);
  };

  w.StartObject();
  w.Key("architectures");
  w.StartArray();
  w.String("LlamaForCausalLM");
  w.EndArray();
  boolean("attention_bias", false);
  number("attention_dropout", 0.0);
  if (c.bos_token_id >= 0) integer("bos_token_id", c.bos_token_id);
  string("dtype", torch_dtype);
  if (c.eos_token_id >= 0) integer("eos_token_id", c.eos_token_id);
  integer("head_dim", c.head_dim);
  string("hidden_act", "silu");
  integer("hidden_size", c.hidden_size);
  number("initializer_range", c.initializer_range);
  integer("intermediate_size", c.intermediate_size);
  integer("max_position_embeddings", c.max_position_embeddings);
  boolean("mlp_bias", false);
  string("model_type", "llama");
  integer("num_attention_heads", c.num_attention_heads);
  integer("num_hidden_layers", c.num_hidden_layers);
  integer("num_key_value_heads", c.num_key_value_heads);
  integer("pretraining_tp", 1);
  number("rms_norm_eps", c.rms_norm_eps);
  // Both spellings of RoPE: transformers 5 reads rope_parameters, 4.x rope_theta + rope_scaling.
  w.Key("rope_parameters");
  w.StartObject();
  number("rope_theta", c.rope_theta);
  string("rope_type", llama3 ? "llama3" : "default");
  if (llama3) rope_settings();
  w.EndObject();
  w.Key("rope_scaling");
  if (llama3) {
    w.StartObject();
    string("rope_type", "llama3");
    rope_settings();
    w.EndObject();
  } else {
    w.Null();
  }
  number("rope_theta", c.rope_theta);
  boolean("tie_word_embeddings", c.tie_word_embeddings);
  boolean("use_cache", true);
  integer("vocab_size", c.vocab_size);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

}  // namespace fm::model
