#include "runtime/config/json_reader.h"

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::runtime {

namespace {

// Deeper nesting than this is certainly not a configuration file; refusing it keeps every later
// recursive walk shallow.
constexpr size_t kMaxDepth = 64;

// Builds the JsonNode tree from RapidJSON's SAX events, noting the offset of each value.
class TreeBuilder {
 public:
  explicit TreeBuilder(const rapidjson::StringStream& stream, const std::string& text)
      : stream_(stream), text_(text) {}

  bool Null() { return add(scalar(JsonNode::Kind::Null, 4)); }
  bool Bool(bool b) {
    JsonNode n = scalar(JsonNode::Kind::Bool, b ? 4 : 5);
    n.boolean = b;
    return add(std::move(n));
  }
  bool RawNumber(const char* str, rapidjson::SizeType len, bool) {
    JsonNode n;
    n.kind = JsonNode::Kind::Number;
    n.text.assign(str, len);
    // RapidJSON parses numbers and strings on a local copy of a string stream, so the stream may
    // still stand at the token's start; otherwise it stands just past the token.
    size_t at = stream_.Tell();
    n.offset = text_.compare(at, len, n.text) == 0 ? at : at - len;
    return add(std::move(n));
  }
  bool String(const char* str, rapidjson::SizeType len, bool) {
    JsonNode n;
    n.kind = JsonNode::Kind::String;
    n.offset = string_start();
    n.text.assign(str, len);
    return add(std::move(n));
  }
  bool Key(const char* str, rapidjson::SizeType len, bool) {
    JsonMember m;
    m.key.assign(str, len);
    m.key_offset = string_start();
    stack_.back()->members.push_back(std::move(m));
    return true;
  }
  bool StartObject() { return open(JsonNode::Kind::Object); }
  bool EndObject(rapidjson::SizeType) { return close(); }
  bool StartArray() { return open(JsonNode::Kind::Array); }
  bool EndArray(rapidjson::SizeType) { return close(); }
  // Only RawNumber is called under kParseNumbersAsStringsFlag.
  bool Int(int) { return false; }
  bool Uint(unsigned) { return false; }
  bool Int64(int64_t) { return false; }
  bool Uint64(uint64_t) { return false; }
  bool Double(double) { return false; }

  JsonNode take_root() { return std::move(root_); }
  bool too_deep() const { return too_deep_; }

 private:
  JsonNode scalar(JsonNode::Kind kind, size_t token_len) const {
    JsonNode n;
    n.kind = kind;
    n.offset = stream_.Tell() - token_len;
    return n;
  }

  // The stream stands at the string's opening quote (see RawNumber) or just past its closing
  // quote; in the second case walk back to the opening quote (one not preceded by an odd number
  // of backslashes).
  size_t string_start() const {
    size_t end = stream_.Tell();
    // In valid JSON a closing quote is never directly followed by another quote.
    if (end < text_.size() && text_[end] == '"') return end;
    if (end < 2) return 0;
    for (size_t i = end - 1; i-- > 0;) {
      if (text_[i] != '"') continue;
      size_t slashes = 0;
      while (i >= slashes + 1 && text_[i - slashes - 1] == '\\') ++slashes;
      if (slashes % 2 == 0) return i;
    }
    return 0;
  }

  bool add(JsonNode n) {
    if (stack_.empty()) {
      root_ = std::move(n);
      return true;
    }
    JsonNode* parent = stack_.back();
    if (parent->is_array()) parent->items.push_back(std::move(n));
    else parent->members.back().value = std::move(n);
    return true;
  }

  bool open(JsonNode::Kind kind) {
    if (stack_.size() >= kMaxDepth) {
      too_deep_ = true;
      return false;
    }
    JsonNode n;
    n.kind = kind;
    n.offset = stream_.Tell() - 1;
    JsonNode* slot = nullptr;
    if (stack_.empty()) {
      root_ = std::move(n);
      slot = &root_;
    } else {
      JsonNode* parent = stack_.back();
      if (parent->is_array()) {
        parent->items.push_back(std::move(n));
        slot = &parent->items.back();
      } else {
        parent->members.back().value = std::move(n);
        slot = &parent->members.back().value;
      }
    }
    stack_.push_back(slot);
    return true;
  }

  bool close() {
    stack_.pop_back();
    return true;
  }

  const rapidjson::StringStream& stream_;
  const std::string& text_;
  JsonNode root_;
  // Pointers stay valid: a container is only appended to while it is the innermost open one.
  std::vector<JsonNode*> stack_;
  bool too_deep_ = false;
};

void check_duplicates(const JsonDocument& doc, const JsonNode& node, const std::string& path) {
  if (node.is_object()) {
    std::unordered_map<std::string_view, size_t> first_at;
    for (const JsonMember& m : node.members) {
      std::string member_path = json_path_join(path, m.key);
      auto [it, inserted] = first_at.emplace(m.key, m.key_offset);
      if (!inserted) {
        throw InputError(member_path,
                         "duplicate key (first at " + doc.location(it->second) + ", again at " +
                             doc.location(m.key_offset) + ")",
                         "keep one of them; JSON objects must not repeat a key");
      }
      check_duplicates(doc, m.value, member_path);
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.items.size(); ++i)
      check_duplicates(doc, node.items[i], path + "[" + std::to_string(i) + "]");
  }
}

}  // namespace

bool JsonNode::is_integer_literal() const {
  return is_number() && text.find_first_of(".eE") == std::string::npos;
}

const JsonNode* JsonNode::find(std::string_view key) const {
  for (const JsonMember& m : members)
    if (m.key == key) return &m.value;
  return nullptr;
}

std::string JsonDocument::location(size_t offset) const {
  LineCol lc = line_col_at(text, offset);
  return source + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col);
}

JsonDocument parse_json(std::string text, std::string source) {
  JsonDocument doc;
  doc.source = std::move(source);
  doc.text = std::move(text);
  if (size_t nul = doc.text.find('\0'); nul != std::string::npos)
    throw InputError(doc.location(nul), "invalid JSON: a NUL byte in the text", "is this a text file?");
  rapidjson::StringStream stream(doc.text.c_str());
  TreeBuilder builder(stream, doc.text);
  rapidjson::Reader reader;
  constexpr unsigned kFlags = rapidjson::kParseCommentsFlag | rapidjson::kParseTrailingCommasFlag |
                              rapidjson::kParseNumbersAsStringsFlag;
  rapidjson::ParseResult ok = reader.Parse<kFlags>(stream, builder);
  if (!ok) {
    std::string what = builder.too_deep()
                           ? "values nested more than " + std::to_string(kMaxDepth) + " levels deep"
                           : std::string("invalid JSON: ") + rapidjson::GetParseError_En(ok.Code());
    throw InputError(doc.location(ok.Offset()), what,
                     "JSON (comments and trailing commas allowed); check the text around this position");
  }
  doc.root = builder.take_root();
  check_duplicates(doc, doc.root, "");
  return doc;
}

JsonDocument read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the file", "check the path and its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, "cannot read the file");
  return parse_json(ss.str(), path);
}

std::string describe_json_value(const JsonNode& node) {
  switch (node.kind) {
    case JsonNode::Kind::Null: return "null";
    case JsonNode::Kind::Bool: return node.boolean ? "true" : "false";
    case JsonNode::Kind::Number: return "the number " + node.text;
    case JsonNode::Kind::String: return "the string \"" + node.text + "\"";
    case JsonNode::Kind::Array: return "an array";
    case JsonNode::Kind::Object: return "an object";
  }
  return "a value";
}

std::string json_path_join(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string p(parent);
  p += '.';
  p += key;
  return p;
}

}  // namespace fm::runtime
