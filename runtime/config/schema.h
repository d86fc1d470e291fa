// Table-driven strict reading, writing and documenting of JSON sections into plain structs.
//
// Each config struct has one `describe(V& v, S& s)` function listing its keys, one line each:
//     v.field("lr", s.lr, "learning rate", check().gt(0));
//     v.section("fp16", s.fp16, "fp16 mixed precision");
// The same list drives four visitors: KeyCollector (the valid keys of an object), Reader (JSON ->
// struct, strict), Writer (struct -> JSON) and Documenter (the reference table in docs/config.md).
// Defaults are the struct's member initialisers, so a default-constructed struct is the default
// config. The member's C++ type decides the JSON type:
//     bool, int64_t, double, std::string, enums (with an EnumInfo<E> specialisation),
//     std::optional<T> (null allowed), std::vector<std::string>, std::array<double, N>.
// Reader rules: an unknown key is an error naming its path with the nearest valid key; a wrong
// type names expected and actual; "auto" is accepted only where Check::allow_auto() says so
// (recorded in ReadState::auto_keys for resolve_ds_config), and otherwise refused with what to
// write; integers never come from floats except for sizes marked Check::sized() (5e8).
#pragma once

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/config/json_reader.h"

namespace fm::runtime::schema {

// Constraints of one key. Bounds apply to numbers (and to the elements of number arrays).
struct Check {
  std::optional<double> gt_, ge_, lt_, le_;
  bool auto_ok_ = false;
  bool sized_ = false;
  bool required_ = false;
  std::string example_;  // what to write instead of an unresolvable "auto"

  Check& gt(double v) { gt_ = v; return *this; }
  Check& ge(double v) { ge_ = v; return *this; }
  Check& lt(double v) { lt_ = v; return *this; }
  Check& le(double v) { le_ = v; return *this; }
  Check& allow_auto() { auto_ok_ = true; return *this; }
  Check& sized() { sized_ = true; return *this; }
  Check& required() { required_ = true; return *this; }
  Check& example(std::string e) { example_ = std::move(e); return *this; }

  bool has_bounds() const { return gt_ || ge_ || lt_ || le_; }
  // "> 0", ">= 0 and < 1", ... ("" without bounds).
  std::string bounds_text() const;
};
inline Check check() { return {}; }

// Names of an enum's values, indexed by the value. An empty name marks a value that cannot be
// written (e.g. "no scheduler"). `unsupported` lists names that are real elsewhere (DeepSpeed) but
// refused here, so the message can say "not supported" rather than "unknown".
template <class E>
struct EnumInfo;  // static const std::vector<std::string>& names(); static bool icase();
                  // static const std::vector<std::string>& unsupported(); static std::string what();

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

struct ReadState {
  const JsonDocument& doc;
  std::vector<std::string>& auto_keys;  // JSON paths written as "auto" and accepted
};

// Throws InputError(path, what + " (at file:line:col)", hint).
[[noreturn]] void fail(const ReadState& st, const std::string& path, size_t offset, const std::string& what,
                       const std::string& hint = {});

// ---- value readers (strict) -------------------------------------------------------------------
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, bool& out, const Check& c);
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, int64_t& out, const Check& c);
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, double& out, const Check& c);
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, std::string& out,
                const Check& c);
void read_value(const ReadState& st, const std::string& path, const JsonNode& n,
                std::vector<std::string>& out, const Check& c);
// Index into `names` of the string `n` (case-insensitively when `icase`); errors name the valid ones.
size_t read_enum_index(const ReadState& st, const std::string& path, const JsonNode& n,
                       const std::vector<std::string>& names, bool icase,
                       const std::vector<std::string>& unsupported, const std::string& what);

template <class E>
  requires std::is_enum_v<E>
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, E& out, const Check&) {
  out = static_cast<E>(read_enum_index(st, path, n, EnumInfo<E>::names(), EnumInfo<E>::icase(),
                                       EnumInfo<E>::unsupported(), EnumInfo<E>::what()));
}

template <size_t N>
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, std::array<double, N>& out,
                const Check& c) {
  if (!n.is_array() || n.items.size() != N)
    fail(st, path, n.offset,
         "expected an array of " + std::to_string(N) + " numbers, got " +
             (n.is_array() ? "an array of " + std::to_string(n.items.size()) : describe_json_value(n)));
  for (size_t i = 0; i < N; ++i) read_value(st, path + "[" + std::to_string(i) + "]", n.items[i], out[i], c);
}

template <class T>
void read_value(const ReadState& st, const std::string& path, const JsonNode& n, std::optional<T>& out,
                const Check& c) {
  if (n.is_null()) {
    out.reset();
    return;
  }
  T v{};
  read_value(st, path, n, v, c);
  out = std::move(v);
}

// ---- value writers -----------------------------------------------------------------------------
using JsonWriter = rapidjson::PrettyWriter<rapidjson::StringBuffer>;
void write_value(JsonWriter& w, bool v);
void write_value(JsonWriter& w, int64_t v);
void write_value(JsonWriter& w, double v);
void write_value(JsonWriter& w, const std::string& v);
void write_value(JsonWriter& w, const std::vector<std::string>& v);
template <class E>
  requires std::is_enum_v<E>
void write_value(JsonWriter& w, E v) {
  write_value(w, EnumInfo<E>::names()[static_cast<size_t>(v)]);
}
template <size_t N>
void write_value(JsonWriter& w, const std::array<double, N>& v) {
  w.StartArray();
  for (double x : v) write_value(w, x);
  w.EndArray();
}
template <class T>
void write_value(JsonWriter& w, const std::optional<T>& v) {
  if (v) write_value(w, *v);
  else w.Null();
}
// A value as compact JSON text (for defaults in the reference table).
template <class T>
std::string value_text(const T& v) {
  rapidjson::StringBuffer buf;
  JsonWriter w(buf);
  w.SetIndent(' ', 0);
  w.SetFormatOptions(rapidjson::kFormatSingleLineArray);
  write_value(w, v);
  return buf.GetString();
}

// ---- type names for messages and the reference -------------------------------------------------
template <class T>
std::string type_name(const Check& c) {
  if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, int64_t>) return c.sized_ ? "integer (5e8 ok)" : "integer";
  else if constexpr (std::is_same_v<T, double>) return "number";
  else if constexpr (std::is_same_v<T, std::string>) return "string";
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "list of strings";
  else if constexpr (is_optional<T>::value) return type_name<typename T::value_type>(c) + " or null";
  else if constexpr (std::is_enum_v<T>) {
    std::string s;
    for (const std::string& n : EnumInfo<T>::names()) {
      if (n.empty()) continue;
      if (!s.empty()) s += " \\| ";
      s += "\"" + n + "\"";
    }
    return s;
  } else {
    std::string s = "[";  // built piecewise: GCC 12 misreports "lit" + to_string() under -O3
    s += std::to_string(std::tuple_size_v<T>);
    s += " numbers]";
    return s;
  }
}

// What to write instead of an "auto" this key cannot resolve.
template <class T>
std::string auto_replacement(const T& current, const Check& c) {
  if (!c.example_.empty()) return "write " + c.example_;
  if constexpr (std::is_same_v<T, bool>) return "write true or false";
  else if constexpr (std::is_same_v<T, int64_t>) return "write an integer, e.g. " + value_text(current);
  else if constexpr (std::is_same_v<T, double>) return "write a number, e.g. " + value_text(current);
  else if constexpr (std::is_enum_v<T>) return "write one of " + type_name<T>(c);
  else return "write a " + type_name<T>(c) + ", e.g. " + value_text(current);
}

template <class S>
struct SectionOpts {
  bool required = false;
  void (*from_bool)(S&, bool) = nullptr;   // the section may also be written as true/false
  bool (*present)(const S&) = nullptr;     // Writer: omit the section when this says false
  std::string example;                     // shown when a required section is missing
};

// ---- visitors ----------------------------------------------------------------------------------
struct KeyCollector {
  std::vector<std::string> keys;  // accepted keys, in table order
  struct Refused {
    std::string key, problem, hint;
  };
  std::vector<Refused> refused;

  void add(const std::string& k) {
    for (const std::string& e : keys)
      if (e == k) return;
    keys.push_back(k);
  }
  template <class T>
  void field(const char* key, T&, const char*, const Check& = {}) { add(key); }
  template <class S>
  void section(const char* key, S&, const char*, const SectionOpts<S>& = {}) { add(key); }
  template <class S, class E>
  void variant(const char* key, E, E, S&, const char*) { add(key); }
  void refuse(const char* key, const char* problem, const char* hint) { refused.push_back({key, problem, hint}); }
};

// Unknown and refused keys of `obj` are errors (the first in document order is reported, the
// others are listed in its message).
void check_keys(const ReadState& st, const JsonNode& obj, const std::string& path, const KeyCollector& keys);

template <class S>
void read_section(ReadState& st, const JsonNode& obj, const std::string& path, S& s);

class Reader {
 public:
  Reader(ReadState& st, const JsonNode& obj, std::string path) : st_(st), obj_(obj), path_(std::move(path)) {}

  template <class T>
  void field(const char* key, T& m, const char*, const Check& c = {}) {
    const JsonMember* mem = member(key);
    std::string p = json_path_join(path_, key);
    if (!mem) {
      if (c.required_) fail(st_, p, obj_.offset, "missing required key", required_hint<T>(key, c));
      return;
    }
    const JsonNode& n = mem->value;
    if (n.is_string() && n.text == "auto") {
      if (!c.auto_ok_) {
        fail(st_, p, n.offset, "\"auto\" cannot be resolved for this key", auto_replacement(m, c));
      }
      st_.auto_keys.push_back(p);
      if constexpr (is_optional<T>::value) m.reset();
      return;
    }
    read_value(st_, p, n, m, c);
  }

  template <class S>
  void section(const char* key, S& s, const char*, const SectionOpts<S>& o = {}) {
    const JsonMember* mem = member(key);
    std::string p = json_path_join(path_, key);
    if (!mem) {
      if (o.required) fail(st_, p, obj_.offset, "missing required section", o.example);
      return;
    }
    if (o.from_bool && mem->value.is_bool()) {
      o.from_bool(s, mem->value.boolean);
      return;
    }
    if (!mem->value.is_object())
      fail(st_, p, mem->value.offset,
           std::string("expected an object") + (o.from_bool ? " or true/false" : "") + ", got " +
               describe_json_value(mem->value));
    read_section(st_, mem->value, p, s);
  }

  // A sub-object whose keys depend on an already read selector (scheduler params by type).
  template <class S, class E>
  void variant(const char* key, E selector, E when, S& s, const char*) {
    if (selector != when) return;
    const JsonMember* mem = member(key);
    std::string p = json_path_join(path_, key);
    if (!mem) {
      JsonNode empty;
      empty.kind = JsonNode::Kind::Object;
      empty.offset = obj_.offset;
      read_section(st_, empty, p, s);
      return;
    }
    if (!mem->value.is_object())
      fail(st_, p, mem->value.offset, "expected an object, got " + describe_json_value(mem->value));
    read_section(st_, mem->value, p, s);
  }

  void refuse(const char*, const char*, const char*) {}  // handled by check_keys

 private:
  const JsonMember* member(std::string_view key) const {
    for (const JsonMember& m : obj_.members)
      if (m.key == key) return &m;
    return nullptr;
  }
  template <class T>
  static std::string required_hint(const char* key, const Check& c) {
    if (!c.example_.empty()) return "write \"" + std::string(key) + "\": " + c.example_;
    return "add \"" + std::string(key) + "\" (" + type_name<T>(c) + ")" + (c.auto_ok_ ? " or \"auto\"" : "");
  }

  ReadState& st_;
  const JsonNode& obj_;
  std::string path_;
};

template <class S>
void read_section(ReadState& st, const JsonNode& obj, const std::string& path, S& s) {
  KeyCollector keys;
  describe(keys, s);
  check_keys(st, obj, path, keys);
  Reader r(st, obj, path);
  describe(r, s);
}

class Writer {
 public:
  // Paths in `auto_paths` are written as "auto" (an unresolved config).
  Writer(JsonWriter& w, std::string path, const std::vector<std::string>* auto_paths)
      : w_(w), path_(std::move(path)), auto_paths_(auto_paths) {}

  template <class T>
  void field(const char* key, T& m, const char*, const Check& = {}) {
    w_.Key(key);
    if (is_auto(json_path_join(path_, key))) w_.String("auto");
    else write_value(w_, m);
  }
  template <class S>
  void section(const char* key, S& s, const char*, const SectionOpts<S>& o = {}) {
    if (o.present && !o.present(s)) return;
    w_.Key(key);
    w_.StartObject();
    Writer sub(w_, json_path_join(path_, key), auto_paths_);
    describe(sub, s);
    w_.EndObject();
  }
  template <class S, class E>
  void variant(const char* key, E selector, E when, S& s, const char* doc) {
    if (selector == when) section(key, s, doc);
  }
  void refuse(const char*, const char*, const char*) {}

 private:
  bool is_auto(const std::string& p) const {
    if (!auto_paths_) return false;
    for (const std::string& a : *auto_paths_)
      if (a == p) return true;
    return false;
  }
  JsonWriter& w_;
  std::string path_;
  const std::vector<std::string>* auto_paths_;
};

// One row per key of the reference table.
struct DocRow {
  std::string path, type, default_value, constraint, doc;
};

class Documenter {
 public:
  Documenter(std::vector<DocRow>& rows, std::string path, std::string doc_prefix = {})
      : rows_(rows), path_(std::move(path)), prefix_(std::move(doc_prefix)) {}

  template <class T>
  void field(const char* key, T& m, const char* doc, const Check& c = {}) {
    std::string constraint = c.bounds_text();
    if (c.auto_ok_) constraint += std::string(constraint.empty() ? "" : "; ") + "\"auto\" ok";
    rows_.push_back({json_path_join(path_, key), type_name<T>(c), c.required_ ? "required" : value_text(m),
                     constraint, prefix_ + doc});
  }
  template <class S>
  void section(const char* key, S& s, const char* doc, const SectionOpts<S>& o = {}) {
    std::string p = json_path_join(path_, key);
    rows_.push_back({p, o.from_bool ? "object or bool" : "object", o.required ? "required" : "{}", "",
                     prefix_ + doc});
    Documenter sub(rows_, p, prefix_);
    describe(sub, s);
  }
  template <class S, class E>
  void variant(const char* key, E, E when, S& s, const char* doc) {
    std::string p = json_path_join(path_, key);
    std::string tag = "(" + EnumInfo<E>::names()[static_cast<size_t>(when)] + ") ";
    rows_.push_back({p, "object", "{}", "", tag + doc});
    Documenter sub(rows_, p, tag);
    describe(sub, s);
  }
  void refuse(const char* key, const char* problem, const char* hint) {
    rows_.push_back({json_path_join(path_, key), "-", "-", "refused", std::string(problem) + "; " + hint});
  }

 private:
  std::vector<DocRow>& rows_;
  std::string path_;
  std::string prefix_;
};

}  // namespace fm::runtime::schema
