#include "data/tokenizer/hf_config.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/tokenizer/flat_map.h"
#include "data/tokenizer/unicode.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::data::hf {

namespace {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the tokenizer file", "check the path and its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, "cannot read the tokenizer file");
  return ss.str();
}

void parse_json(const std::string& path, const std::string& text, rapidjson::Document& doc) {
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError()) {
    LineCol lc = line_col_at(text, doc.GetErrorOffset());
    throw InputError(path + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col),
                     std::string("invalid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()));
  }
}

// A JSON value with its key path, for errors that name the file and the key.
class Json {
 public:
  Json(const rapidjson::Value& v, std::string key, const std::string& file)
      : v_(&v), key_(std::move(key)), file_(&file) {}

  const rapidjson::Value& value() const { return *v_; }
  bool is_null() const { return v_->IsNull(); }

  [[noreturn]] void fail(const std::string& what, const std::string& hint = {}) const {
    throw InputError(*file_ + ": " + (key_.empty() ? std::string("(top level)") : key_), what, hint);
  }
  std::string child_key(std::string_view name) const {
    return key_.empty() ? std::string(name) : key_ + "." + std::string(name);
  }
  bool has(const char* name) const { return v_->IsObject() && v_->HasMember(name); }
  Json get(const char* name) const {
    if (!v_->IsObject()) fail("expected an object");
    auto it = v_->FindMember(name);
    if (it == v_->MemberEnd()) fail(std::string("missing key '") + name + "'");
    return Json(it->value, child_key(name), *file_);
  }
  Json at(size_t i) const { return Json((*v_)[static_cast<rapidjson::SizeType>(i)], key_ + "[" + std::to_string(i) + "]", *file_); }
  size_t array_size() const {
    if (!v_->IsArray()) fail("expected an array");
    return v_->Size();
  }
  std::string string() const {
    if (!v_->IsString()) fail("expected a string");
    return std::string(v_->GetString(), v_->GetStringLength());
  }
  bool boolean() const {
    if (!v_->IsBool()) fail("expected true or false");
    return v_->GetBool();
  }
  int64_t integer() const {
    if (!v_->IsInt64()) fail("expected an integer");
    return v_->GetInt64();
  }
  int32_t id() const {
    int64_t v = integer();
    if (v < 0 || v > INT32_MAX) fail("expected a token id (0 .. 2^31-1), got " + std::to_string(v));
    return static_cast<int32_t>(v);
  }
  bool boolean_or(const char* name, bool fallback) const { return has(name) ? get(name).boolean() : fallback; }
  std::string type() const { return get("type").string(); }

  // Every key must be one this implementation understands.
  void only_keys(std::initializer_list<const char*> allowed) const {
    if (!v_->IsObject()) fail("expected an object");
    std::vector<std::string> names(allowed.begin(), allowed.end());
    for (auto it = v_->MemberBegin(); it != v_->MemberEnd(); ++it) {
      std::string name(it->name.GetString(), it->name.GetStringLength());
      bool known = false;
      for (const std::string& a : names) known = known || a == name;
      if (!known) {
        Json(it->value, child_key(name), *file_)
            .fail("this key is not supported by fmengine's tokenizer", suggestion_hint(name, names));
      }
    }
  }
  [[noreturn]] void unsupported_type(const std::string& what, const std::vector<std::string>& supported) const {
    std::string t = type();
    get("type").fail(what + " '" + t + "' is not supported", "supported: " + join(supported, ", "));
  }

 private:
  const rapidjson::Value* v_;
  std::string key_;
  const std::string* file_;
};

uint32_t single_char(const Json& j) {
  std::string s = j.string();
  if (s.empty() || !is_valid_utf8(s)) j.fail("expected one character");
  uint32_t len;
  uint32_t cp = decode_utf8(s.data(), 0, len);
  if (len != s.size()) j.fail("expected one character, got '" + s + "'");
  return cp;
}

std::string literal_pattern(const Json& pattern) {
  pattern.only_keys({"String", "Regex"});
  if (pattern.has("Regex")) pattern.get("Regex").fail("regex patterns are not supported here", "use a String pattern");
  std::string s = pattern.get("String").string();
  if (s.empty()) pattern.get("String").fail("an empty pattern is not supported");
  return s;
}

// --- normalizer ------------------------------------------------------------------------------

void parse_normalizer(const Json& n, HfConfig& cfg) {
  if (n.is_null()) return;
  std::string type = n.type();
  if (type == "Sequence") {
    n.only_keys({"type", "normalizers"});
    Json list = n.get("normalizers");
    for (size_t i = 0; i < list.array_size(); ++i) parse_normalizer(list.at(i), cfg);
  } else if (type == "Prepend") {
    n.only_keys({"type", "prepend"});
    cfg.normalizer.push_back({NormalizerStep::Kind::kPrepend, n.get("prepend").string(), {}});
  } else if (type == "Replace") {
    n.only_keys({"type", "pattern", "content"});
    cfg.normalizer.push_back(
        {NormalizerStep::Kind::kReplace, literal_pattern(n.get("pattern")), n.get("content").string()});
  } else {
    n.unsupported_type("normalizer", {"Sequence", "Prepend", "Replace"});
  }
}

// --- pre-tokenizer ---------------------------------------------------------------------------

MetaspaceConfig parse_metaspace(const Json& m) {
  m.only_keys({"type", "replacement", "prepend_scheme", "split", "add_prefix_space", "str_rep"});
  MetaspaceConfig ms;
  ms.replacement_cp = single_char(m.get("replacement"));
  ms.replacement = m.get("replacement").string();
  if (m.has("prepend_scheme")) {
    Json s = m.get("prepend_scheme");
    std::string v = s.string();
    if (v == "always") ms.scheme = PrependScheme::kAlways;
    else if (v == "first") ms.scheme = PrependScheme::kFirst;
    else if (v == "never") ms.scheme = PrependScheme::kNever;
    else s.fail("unknown prepend_scheme '" + v + "'", "one of: always, first, never");
  } else if (m.has("add_prefix_space")) {
    // The older form: `tokenizers` reads true as "always" and refuses false without a scheme.
    Json a = m.get("add_prefix_space");
    if (!a.boolean()) a.fail("add_prefix_space false needs prepend_scheme \"never\"");
    ms.scheme = PrependScheme::kAlways;
  }
  ms.split = m.boolean_or("split", true);
  return ms;
}

void parse_pre_step(const Json& p, HfConfig& cfg) {
  std::string type = p.type();
  if (type == "Metaspace") {
    if (cfg.metaspace || !cfg.splits.empty() || cfg.byte_level)
      p.fail("a Metaspace pre-tokenizer is supported only on its own");
    cfg.metaspace = parse_metaspace(p);
  } else if (type == "Split") {
    p.only_keys({"type", "pattern", "behavior", "invert"});
    if (cfg.metaspace || cfg.byte_level) p.fail("a Split after Metaspace or ByteLevel is not supported");
    Json pattern = p.get("pattern");
    pattern.only_keys({"String", "Regex"});
    if (pattern.has("String")) pattern.get("String").fail("Split on a literal string is not supported");
    Json regex = pattern.get("Regex");
    auto which = split_pattern_of(regex.string());
    if (!which) {
      regex.fail("this Split regex is not supported",
                 "supported: the LLaMA 3 pattern and the GPT-2 pattern, written exactly as in their tokenizer.json");
    }
    Json behavior = p.get("behavior");
    if (behavior.string() != "Isolated") behavior.fail("only the \"Isolated\" behavior is supported");
    Json invert = p.get("invert");
    if (invert.boolean()) invert.fail("invert: true is not supported");
    cfg.splits.push_back(*which);
  } else if (type == "ByteLevel") {
    p.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    if (cfg.metaspace || cfg.byte_level) p.fail("ByteLevel must be the last pre-tokenizer, and only one");
    cfg.byte_level = true;
    cfg.byte_level_prefix_space = p.get("add_prefix_space").boolean();
    cfg.byte_level_split = p.get("use_regex").boolean();
    p.get("trim_offsets").boolean();  // offsets only
  } else {
    p.unsupported_type("pre-tokenizer", {"Sequence", "Split", "ByteLevel", "Metaspace"});
  }
}

void parse_pre_tokenizer(const Json& p, HfConfig& cfg) {
  if (p.is_null()) return;
  if (p.type() == "Sequence") {
    p.only_keys({"type", "pretokenizers"});
    Json list = p.get("pretokenizers");
    for (size_t i = 0; i < list.array_size(); ++i) {
      Json step = list.at(i);
      if (step.type() == "Sequence") step.fail("nested pre-tokenizer sequences are not supported");
      parse_pre_step(step, cfg);
    }
  } else {
    parse_pre_step(p, cfg);
  }
}

// --- model -----------------------------------------------------------------------------------

void parse_model(const Json& m, HfConfig& cfg, StringIdMap& vocab_ids) {
  if (m.type() != "BPE") m.unsupported_type("model", {"BPE"});
  m.only_keys({"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
               "byte_fallback", "ignore_merges", "vocab", "merges"});
  if (m.has("dropout") && !m.get("dropout").is_null()) {
    Json d = m.get("dropout");
    if (!d.value().IsNumber() || d.value().GetDouble() != 0.0) d.fail("BPE dropout is not supported", "set it to null");
  }
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.has(affix) && !m.get(affix).is_null() && !m.get(affix).string().empty())
      m.get(affix).fail("this option is not supported", "set it to null");
  }
  cfg.bpe.fuse_unk = m.boolean_or("fuse_unk", false);
  cfg.bpe.byte_fallback = m.boolean_or("byte_fallback", false);
  cfg.bpe.ignore_merges = m.boolean_or("ignore_merges", false);
  cfg.bpe.byte_level = cfg.byte_level;

  // The vocabulary and the merges are large: their entries are read without building key paths,
  // which are made only for an error.
  Json vocab = m.get("vocab");
  if (!vocab.value().IsObject()) vocab.fail("expected an object of token -> id");
  cfg.vocab.reserve(vocab.value().MemberCount());
  vocab_ids.reserve(vocab.value().MemberCount());
  std::vector<bool> seen_ids;
  for (auto it = vocab.value().MemberBegin(); it != vocab.value().MemberEnd(); ++it) {
    std::string_view token(it->name.GetString(), it->name.GetStringLength());
    const rapidjson::Value& v = it->value;
    if (!v.IsInt64() || v.GetInt64() < 0 || v.GetInt64() > INT32_MAX)
      Json(v, vocab.child_key(token), cfg.path).id();  // throws, naming the entry
    auto id = static_cast<int32_t>(v.GetInt64());
    if (!vocab_ids.insert(token, id)) vocab.fail("the token '" + std::string(token) + "' is listed twice");
    if (seen_ids.size() <= static_cast<size_t>(id)) seen_ids.resize(static_cast<size_t>(id) + 1, false);
    if (seen_ids[static_cast<size_t>(id)])
      vocab.fail("the id " + std::to_string(id) + " is given to two tokens, one of them '" + std::string(token) + "'");
    seen_ids[static_cast<size_t>(id)] = true;
    cfg.vocab.emplace_back(std::string(token), id);
  }

  if (m.has("unk_token") && !m.get("unk_token").is_null()) {
    Json unk = m.get("unk_token");
    cfg.bpe.unk_id = vocab_ids.find(unk.string());
    if (cfg.bpe.unk_id < 0) unk.fail("the unk token '" + unk.string() + "' is not in model.vocab");
  }

  Json merges = m.get("merges");
  size_t count = merges.array_size();
  cfg.merges.reserve(count);
  std::string joined;
  for (size_t i = 0; i < count; ++i) {
    const rapidjson::Value& item = merges.value()[static_cast<rapidjson::SizeType>(i)];
    std::string_view left, right;
    if (item.IsString()) {
      std::string_view line(item.GetString(), item.GetStringLength());
      size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
        merges.at(i).fail("expected \"left right\" (two tokens separated by one space), got '" +
                          std::string(line) + "'");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else {
      if (!item.IsArray() || item.Size() != 2 || !item[0].IsString() || !item[1].IsString())
        merges.at(i).fail("expected \"left right\" or a pair of tokens");
      left = std::string_view(item[0].GetString(), item[0].GetStringLength());
      right = std::string_view(item[1].GetString(), item[1].GetStringLength());
    }
    joined.assign(left);
    joined.append(right);
    int32_t a = vocab_ids.find(left), b = vocab_ids.find(right), merged = vocab_ids.find(joined);
    if (a < 0) merges.at(i).fail("the token '" + std::string(left) + "' is not in model.vocab");
    if (b < 0) merges.at(i).fail("the token '" + std::string(right) + "' is not in model.vocab");
    if (merged < 0) merges.at(i).fail("the merged token '" + joined + "' is not in model.vocab");
    cfg.merges.push_back({a, b, merged});
  }
}

// --- added tokens ----------------------------------------------------------------------------

void parse_added_tokens(const Json& list, HfConfig& cfg, const StringIdMap& vocab_ids) {
  // Ids follow `tokenizers`' AddedVocabulary: a token already in the model keeps the model's id,
  // a new one takes the next id after the model (or after the last added one).
  StringIdMap added_ids;
  int32_t max_added = -1;
  const auto model_size = static_cast<int64_t>(cfg.vocab.size());
  for (size_t i = 0; i < list.array_size(); ++i) {
    Json t = list.at(i);
    t.only_keys({"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"});
    AddedToken token;
    token.content = t.get("content").string();
    token.id = t.get("id").id();
    token.single_word = t.boolean_or("single_word", false);
    token.lstrip = t.boolean_or("lstrip", false);
    token.rstrip = t.boolean_or("rstrip", false);
    token.special = t.boolean_or("special", false);
    token.normalized = t.boolean_or("normalized", true);
    if (token.content.empty()) t.get("content").fail("an added token cannot be empty");
    if (added_ids.find(token.content) >= 0) t.get("content").fail("the token '" + token.content + "' is added twice");
    int32_t expected = vocab_ids.find(token.content);
    if (expected < 0) {
      expected = static_cast<int32_t>(max_added < 0 ? model_size
                                      : (max_added >= model_size || model_size == 0) ? max_added + 1
                                                                                     : model_size);
    }
    if (expected != token.id) {
      t.get("id").fail("`tokenizers` gives '" + token.content + "' the id " + std::to_string(expected) +
                           ", not " + std::to_string(token.id),
                       "the file is inconsistent; a token that is in model.vocab keeps its id there, others "
                       "follow the model's vocabulary in order");
    }
    added_ids.insert(token.content, token.id);
    max_added = std::max(max_added, token.id);
    cfg.added_tokens.push_back(std::move(token));
  }
}

// --- post-processor --------------------------------------------------------------------------

void parse_template(const Json& p, HfConfig& cfg) {
  p.only_keys({"type", "single", "pair", "special_tokens"});
  Json specials = p.get("special_tokens");
  if (!specials.value().IsObject()) specials.fail("expected an object");
  Json single = p.get("single");
  bool seen_a = false;
  for (size_t i = 0; i < single.array_size(); ++i) {
    Json item = single.at(i);
    item.only_keys({"SpecialToken", "Sequence"});
    if (item.has("Sequence")) {
      Json seq = item.get("Sequence");
      seq.only_keys({"id", "type_id"});
      if (seq.get("id").string() != "A" || seen_a) seq.get("id").fail("the single template must hold sequence A once");
      seen_a = true;
    } else {
      Json special = item.get("SpecialToken");
      special.only_keys({"id", "type_id"});
      std::string name = special.get("id").string();
      if (!specials.has(name.c_str()))
        special.get("id").fail("'" + name + "' is not in post_processor.special_tokens");
      Json entry = specials.get(name.c_str());
      entry.only_keys({"id", "ids", "tokens"});
      Json ids = entry.get("ids");
      for (size_t k = 0; k < ids.array_size(); ++k)
        (seen_a ? cfg.template_suffix : cfg.template_prefix).push_back(ids.at(k).id());
    }
  }
  if (!seen_a) single.fail("the single template has no sequence A");
}

void parse_post_processor(const Json& p, HfConfig& cfg, bool& seen_template) {
  if (p.is_null()) return;
  std::string type = p.type();
  if (type == "TemplateProcessing") {
    if (seen_template) p.fail("only one TemplateProcessing is supported");
    seen_template = true;
    parse_template(p, cfg);
  } else if (type == "ByteLevel") {
    // Only offsets change; ids do not.
    p.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
  } else if (type == "Sequence") {
    p.only_keys({"type", "processors"});
    Json list = p.get("processors");
    for (size_t i = 0; i < list.array_size(); ++i) parse_post_processor(list.at(i), cfg, seen_template);
  } else {
    p.unsupported_type("post-processor", {"TemplateProcessing", "ByteLevel", "Sequence"});
  }
}

// --- decoder ---------------------------------------------------------------------------------

void parse_decoder(const Json& d, HfConfig& cfg) {
  std::string type = d.type();
  DecoderStep step;
  if (type == "Sequence") {
    d.only_keys({"type", "decoders"});
    Json list = d.get("decoders");
    for (size_t i = 0; i < list.array_size(); ++i) parse_decoder(list.at(i), cfg);
    return;
  } else if (type == "Replace") {
    d.only_keys({"type", "pattern", "content"});
    step.kind = DecoderStep::Kind::kReplace;
    step.pattern = literal_pattern(d.get("pattern"));
    step.content = d.get("content").string();
  } else if (type == "ByteFallback") {
    d.only_keys({"type"});
    step.kind = DecoderStep::Kind::kByteFallback;
  } else if (type == "Fuse") {
    d.only_keys({"type"});
    step.kind = DecoderStep::Kind::kFuse;
  } else if (type == "Strip") {
    d.only_keys({"type", "content", "start", "stop"});
    step.kind = DecoderStep::Kind::kStrip;
    step.character = single_char(d.get("content"));
    int64_t start = d.get("start").integer(), stop = d.get("stop").integer();
    if (start < 0) d.get("start").fail("expected a count >= 0");
    if (stop < 0) d.get("stop").fail("expected a count >= 0");
    step.start = static_cast<size_t>(start);
    step.stop = static_cast<size_t>(stop);
  } else if (type == "ByteLevel") {
    d.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    step.kind = DecoderStep::Kind::kByteLevel;
  } else if (type == "Metaspace") {
    MetaspaceConfig ms = parse_metaspace(d);
    step.kind = DecoderStep::Kind::kMetaspace;
    step.character = ms.replacement_cp;
    step.drop_in_first = ms.scheme != PrependScheme::kNever;
  } else {
    d.unsupported_type("decoder", {"Sequence", "Replace", "ByteFallback", "Fuse", "Strip", "ByteLevel", "Metaspace"});
  }
  cfg.decoder.push_back(std::move(step));
}

// bos_token / eos_token of a tokenizer_config.json: a string or {"content": ...}.
std::string special_token_name(const rapidjson::Value& doc, const char* key) {
  if (!doc.IsObject() || !doc.HasMember(key)) return {};
  const rapidjson::Value& v = doc[key];
  if (v.IsString()) return v.GetString();
  if (v.IsObject() && v.HasMember("content") && v["content"].IsString()) return v["content"].GetString();
  return {};
}

}  // namespace

HfConfig read_hf_config(const std::string& path) {
  HfConfig cfg;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    cfg.path = (fs::path(path) / "tokenizer.json").string();
    if (!fs::exists(cfg.path, ec))
      throw InputError(path, "no tokenizer.json in this directory", "give a tokenizer.json file or its directory");
  } else {
    if (!fs::exists(path, ec))
      throw InputError(path, "no such tokenizer file", "give a tokenizer.json file or a directory holding one");
    cfg.path = path;
  }
  std::string text = read_text_file(cfg.path);
  rapidjson::Document doc;
  parse_json(cfg.path, text, doc);
  Json root(doc, "", cfg.path);
  root.only_keys({"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                  "post_processor", "decoder", "model"});
  if (root.has("version")) {
    Json v = root.get("version");
    if (v.string() != "1.0") v.fail("unknown tokenizer.json version '" + v.string() + "'", "expected \"1.0\"");
  }
  for (const char* key : {"truncation", "padding"}) {
    if (root.has(key) && !root.get(key).is_null())
      root.get(key).fail("truncation and padding are not supported", "set it to null; the data pipeline cuts sequences");
  }
  // The pre-tokenizer decides whether the model works on bytes, so it is read before the model.
  if (root.has("normalizer")) parse_normalizer(root.get("normalizer"), cfg);
  if (root.has("pre_tokenizer")) parse_pre_tokenizer(root.get("pre_tokenizer"), cfg);
  StringIdMap vocab_ids;
  parse_model(root.get("model"), cfg, vocab_ids);
  if (root.has("added_tokens")) parse_added_tokens(root.get("added_tokens"), cfg, vocab_ids);
  bool seen_template = false;
  if (root.has("post_processor")) parse_post_processor(root.get("post_processor"), cfg, seen_template);
  if (root.has("decoder") && !root.get("decoder").is_null()) {
    cfg.has_decoder = true;
    parse_decoder(root.get("decoder"), cfg);
  }

  fs::path side = fs::path(cfg.path).parent_path() / "tokenizer_config.json";
  if (fs::exists(side, ec)) {
    std::string side_text = read_text_file(side.string());
    rapidjson::Document side_doc;
    parse_json(side.string(), side_text, side_doc);
    cfg.bos_token = special_token_name(side_doc, "bos_token");
    cfg.eos_token = special_token_name(side_doc, "eos_token");
  }
  return cfg;
}

}  // namespace fm::data::hf
