#include "runtime/checkpoint/manifest.h"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <filesystem>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/checkpoint/file_ops.h"
#include "runtime/checkpoint/xxhash64.h"

namespace fm::checkpoint {
namespace {

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;
using Value = rapidjson::Value;

void raw_json(Writer& w, const std::string& text) {
  if (text.empty()) {
    w.Null();
    return;
  }
  // Re-parse so the manifest embeds the value, checked, instead of trusting the text.
  rapidjson::Document d;
  d.Parse(text.c_str(), text.size());
  FM_CHECK(!d.HasParseError(), "state JSON given to the checkpoint is not valid JSON: " + text);
  d.Accept(w);
}

std::string compact(const Value& v) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  v.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

// Typed access to the manifest's fields: every problem names the file and the field.
struct Fields {
  const std::string& path;

  [[noreturn]] void bad(const std::string& field, const std::string& what) const {
    throw InputError(path + ": " + field, what, "the manifest is damaged or was not written by fmengine");
  }
  const Value& member(const Value& obj, const char* key, const std::string& field) const {
    auto it = obj.FindMember(key);
    if (it == obj.MemberEnd()) bad(field, "missing");
    return it->value;
  }
  int64_t i64(const Value& obj, const char* key, const std::string& prefix, int64_t min = INT64_MIN) const {
    const std::string field = prefix + key;
    const Value& v = member(obj, key, field);
    if (!v.IsInt64()) bad(field, "must be an integer");
    if (v.GetInt64() < min) bad(field, fmt::format("must be at least {}", min));
    return v.GetInt64();
  }
  int i32(const Value& obj, const char* key, const std::string& prefix, int min) const {
    const int64_t v = i64(obj, key, prefix, min);
    if (v > INT32_MAX) bad(prefix + key, "is too large");
    return int(v);
  }
  std::string str(const Value& obj, const char* key, const std::string& prefix) const {
    const Value& v = member(obj, key, prefix + key);
    if (!v.IsString()) bad(prefix + key, "must be a string");
    return std::string(v.GetString(), v.GetStringLength());
  }
  bool boolean(const Value& obj, const char* key, const std::string& prefix) const {
    const Value& v = member(obj, key, prefix + key);
    if (!v.IsBool()) bad(prefix + key, "must be true or false");
    return v.GetBool();
  }
  // A JSON value kept as text; null = "".
  std::string json(const Value& obj, const char* key, const std::string& prefix) const {
    const Value& v = member(obj, key, prefix + key);
    return v.IsNull() ? std::string() : compact(v);
  }
};

}  // namespace

bool Manifest::has_optimizer_state() const {
  if (files.empty()) return false;
  for (const auto& f : files)
    if (!f.optimizer_state) return false;
  return true;
}

std::string manifest_to_json(const Manifest& m) {
  rapidjson::StringBuffer buf;
  Writer w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("format");
  w.String(kFormatName);
  w.Key("version");
  w.Int(kFormatVersion);
  w.Key("tag");
  w.String(m.tag.c_str());
  w.Key("created");
  w.String(m.created.c_str());
  w.Key("fmengine_version");
  w.String(m.fmengine_version.c_str());

  const TrainState& s = m.state;
  w.Key("state");
  w.StartObject();
  w.Key("global_step");
  w.Int64(s.global_step);
  w.Key("optimizer_steps");
  w.Int64(s.optimizer_steps);
  w.Key("scheduler_t");
  w.Int64(s.scheduler_t);
  w.Key("skipped_steps");
  w.Int64(s.skipped_steps);
  w.Key("loader");
  raw_json(w, s.loader_json);
  w.Key("rng");
  raw_json(w, s.rng_json);
  w.Key("loss_scaler");
  if (s.loss_scaler) {
    w.StartObject();
    w.Key("scale");
    w.Double(s.loss_scaler->scale);
    w.Key("cur_iter");
    w.Int64(s.loss_scaler->cur_iter);
    w.Key("last_overflow_iter");
    w.Int64(s.loss_scaler->last_overflow_iter);
    w.Key("cur_hysteresis");
    w.Int64(s.loss_scaler->cur_hysteresis);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("config_hash");
  w.String(s.config_hash.c_str());
  w.Key("tokenizer");
  w.String(s.tokenizer.c_str());
  w.Key("extra");
  raw_json(w, s.extra_json);
  w.EndObject();

  w.Key("topology");
  w.StartObject();
  w.Key("pipe");
  w.Int(m.topology.pipe);
  w.Key("dp");
  w.Int(m.topology.dp);
  w.Key("zero_stage");
  w.Int(m.topology.zero_stage);
  w.Key("world");
  w.Int(m.topology.world);
  w.Key("stage_layers");
  w.StartArray();
  for (int b : m.topology.stage_layers) w.Int(b);
  w.EndArray();
  w.EndObject();

  w.Key("model_config");
  raw_json(w, m.model_config_json);

  w.Key("files");
  w.StartArray();
  for (const auto& f : m.files) {
    w.StartObject();
    w.Key("file");
    w.String(f.file.c_str());
    w.Key("stage");
    w.Int(f.stage);
    w.Key("dp_rank");
    w.Int(f.dp_rank);
    w.Key("layers");
    w.StartArray();
    w.Int(f.layer_begin);
    w.Int(f.layer_end);
    w.EndArray();
    w.Key("range");
    w.StartArray();
    w.Int64(f.begin);
    w.Int64(f.end);
    w.EndArray();
    w.Key("optimizer_state");
    w.Bool(f.optimizer_state);
    w.Key("bytes");
    w.Int64(f.bytes);
    w.Key("xxh64");
    w.String(checksum_hex(f.checksum).c_str());
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize()) + "\n";
}

Manifest parse_manifest(std::string_view text, const std::string& path) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError()) {
    const LineCol lc = line_col_at(text, doc.GetErrorOffset());
    throw InputError(
        fmt::format("{}:{}:{}", path, lc.line, lc.col),
        std::string("invalid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()),
        "the manifest is damaged (a checkpoint's manifest.json is written atomically; was it edited?)");
  }
  Fields f{path};
  if (!doc.IsObject()) f.bad("(top level)", "must be a JSON object");
  const std::string format = f.str(doc, "format", "");
  if (format != kFormatName) f.bad("format", fmt::format("is \"{}\", expected \"{}\"", format, kFormatName));
  const int64_t version = f.i64(doc, "version", "");
  if (version != kFormatVersion)
    throw InputError(
        path + ": version",
        fmt::format("checkpoint format version {} is not supported (this fmengine reads version {})", version,
                    kFormatVersion),
        "use the fmengine version that wrote it");

  Manifest m;
  m.path = path;
  m.tag = f.str(doc, "tag", "");
  m.created = f.str(doc, "created", "");
  m.fmengine_version = f.str(doc, "fmengine_version", "");

  const Value& st = f.member(doc, "state", "state");
  if (!st.IsObject()) f.bad("state", "must be an object");
  TrainState& s = m.state;
  s.global_step = f.i64(st, "global_step", "state.", 0);
  s.optimizer_steps = f.i64(st, "optimizer_steps", "state.", 0);
  s.scheduler_t = f.i64(st, "scheduler_t", "state.", -1);
  s.skipped_steps = f.i64(st, "skipped_steps", "state.", 0);
  s.loader_json = f.json(st, "loader", "state.");
  s.rng_json = f.json(st, "rng", "state.");
  const Value& ls = f.member(st, "loss_scaler", "state.loss_scaler");
  if (!ls.IsNull()) {
    if (!ls.IsObject()) f.bad("state.loss_scaler", "must be an object or null");
    LossScalerState l;
    const Value& scale = f.member(ls, "scale", "state.loss_scaler.scale");
    if (!scale.IsNumber()) f.bad("state.loss_scaler.scale", "must be a number");
    l.scale = scale.GetDouble();
    l.cur_iter = f.i64(ls, "cur_iter", "state.loss_scaler.", 0);
    l.last_overflow_iter = f.i64(ls, "last_overflow_iter", "state.loss_scaler.", -1);
    l.cur_hysteresis = f.i64(ls, "cur_hysteresis", "state.loss_scaler.", 0);
    s.loss_scaler = l;
  }
  s.config_hash = f.str(st, "config_hash", "state.");
  s.tokenizer = f.str(st, "tokenizer", "state.");
  s.extra_json = f.json(st, "extra", "state.");

  const Value& topo = f.member(doc, "topology", "topology");
  if (!topo.IsObject()) f.bad("topology", "must be an object");
  Topology& t = m.topology;
  t.pipe = f.i32(topo, "pipe", "topology.", 1);
  t.dp = f.i32(topo, "dp", "topology.", 1);
  t.zero_stage = f.i32(topo, "zero_stage", "topology.", 0);
  t.world = f.i32(topo, "world", "topology.", 1);
  const Value& sl = f.member(topo, "stage_layers", "topology.stage_layers");
  if (!sl.IsArray()) f.bad("topology.stage_layers", "must be an array");
  for (const auto& b : sl.GetArray()) {
    if (!b.IsInt()) f.bad("topology.stage_layers", "must hold integers");
    t.stage_layers.push_back(b.GetInt());
  }

  const Value& mc = f.member(doc, "model_config", "model_config");
  if (!mc.IsObject()) f.bad("model_config", "must be an object (the model's config.json)");
  m.model_config_json = compact(mc);
  m.model = model::parse_llama_config(m.model_config_json, path + ": model_config");

  const int64_t L2 = m.model.num_layers_total();
  if (int(t.stage_layers.size()) != t.pipe + 1 || t.stage_layers.front() != 0 || t.stage_layers.back() != L2)
    f.bad("topology.stage_layers", fmt::format("must be {} boundaries from 0 to {}", t.pipe + 1, L2));
  for (size_t i = 1; i < t.stage_layers.size(); ++i)
    if (t.stage_layers[i] <= t.stage_layers[i - 1]) f.bad("topology.stage_layers", "must increase");

  const Value& files = f.member(doc, "files", "files");
  if (!files.IsArray()) f.bad("files", "must be an array");
  for (rapidjson::SizeType i = 0; i < files.Size(); ++i) {
    const std::string pre = fmt::format("files[{}].", i);
    const Value& e = files[i];
    if (!e.IsObject()) f.bad(fmt::format("files[{}]", i), "must be an object");
    ShardRecord r;
    r.file = f.str(e, "file", pre);
    if (r.file.empty() || r.file.find('/') != std::string::npos || r.file[0] == '.')
      f.bad(pre + "file", "\"" + r.file + "\" is not a file name within the checkpoint directory");
    r.stage = f.i32(e, "stage", pre, 0);
    r.dp_rank = f.i32(e, "dp_rank", pre, 0);
    auto pair = [&](const char* key, int64_t& a, int64_t& b) {
      const Value& v = f.member(e, key, pre + key);
      if (!v.IsArray() || v.Size() != 2 || !v[0].IsInt64() || !v[1].IsInt64() || v[0].GetInt64() < 0 ||
          v[1].GetInt64() < v[0].GetInt64())
        f.bad(pre + key, "must be [begin, end] with 0 <= begin <= end");
      a = v[0].GetInt64();
      b = v[1].GetInt64();
    };
    int64_t lb = 0, le = 0;
    pair("layers", lb, le);
    if (le > L2 || lb >= le)
      f.bad(pre + "layers", fmt::format("must be a non-empty range within [0, {}]", L2));
    r.layer_begin = int(lb);
    r.layer_end = int(le);
    pair("range", r.begin, r.end);
    r.optimizer_state = f.boolean(e, "optimizer_state", pre);
    r.bytes = f.i64(e, "bytes", pre, 0);
    const std::string sum = f.str(e, "xxh64", pre);
    if (!parse_checksum_hex(sum, r.checksum)) f.bad(pre + "xxh64", "must be 16 lowercase hex digits");
    for (const auto& other : m.files)
      if (other.file == r.file) f.bad(pre + "file", "\"" + r.file + "\" is listed twice");
    m.files.push_back(std::move(r));
  }
  return m;
}

Manifest read_manifest(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kManifestFile).string();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw InputError(path, "missing", "not a complete fmengine checkpoint (the manifest is written last)");
  return parse_manifest(read_file(path), path);
}

std::string step_tag(int64_t step) { return "global_step" + std::to_string(step); }

std::optional<int64_t> parse_step_tag(std::string_view name) {
  constexpr std::string_view prefix = "global_step";
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return std::nullopt;
  const std::string_view digits = name.substr(prefix.size());
  if (digits.size() > 1 && digits[0] == '0') return std::nullopt;
  int64_t v = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size() || v < 0) return std::nullopt;
  return v;
}

std::optional<ConfigDifference> model_config_difference(const model::LlamaConfig& a,
                                                        const model::LlamaConfig& b, bool shapes_only) {
  auto num = [](auto v) { return fmt::format("{}", v); };
#define FM_CMP(field) \
  if (a.field != b.field) return ConfigDifference{#field, num(a.field), num(b.field)};
  FM_CMP(hidden_size)
  FM_CMP(intermediate_size)
  FM_CMP(num_hidden_layers)
  FM_CMP(num_attention_heads)
  FM_CMP(num_key_value_heads)
  FM_CMP(head_dim)
  FM_CMP(vocab_size)
  FM_CMP(tie_word_embeddings)
  if (shapes_only) return std::nullopt;
  FM_CMP(rms_norm_eps)
  FM_CMP(rope_theta)
  if (a.rope_scaling.rope_type != b.rope_scaling.rope_type)
    return ConfigDifference{"rope_scaling.rope_type",
                            a.rope_scaling.rope_type.empty() ? "none" : a.rope_scaling.rope_type,
                            b.rope_scaling.rope_type.empty() ? "none" : b.rope_scaling.rope_type};
  if (!a.rope_scaling.rope_type.empty()) {
    FM_CMP(rope_scaling.factor)
    FM_CMP(rope_scaling.low_freq_factor)
    FM_CMP(rope_scaling.high_freq_factor)
    FM_CMP(rope_scaling.original_max_position_embeddings)
  }
#undef FM_CMP
  return std::nullopt;
}

}  // namespace fm::checkpoint
