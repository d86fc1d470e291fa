#include "runtime/config/schema.h"

#include <cctype>
#include <cmath>
#include <limits>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::runtime::schema {

namespace {

// 0 rather than 0.0 in bounds ("must be > 0").
std::string number_text(double v) {
  if (std::floor(v) == v && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return value_text(v);
}

std::string lower(std::string s) {
  for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

void check_bounds(const ReadState& st, const std::string& path, const JsonNode& n, double v, const Check& c) {
  bool ok = (!c.gt_ || v > *c.gt_) && (!c.ge_ || v >= *c.ge_) && (!c.lt_ || v < *c.lt_) && (!c.le_ || v <= *c.le_);
  if (!ok) fail(st, path, n.offset, "must be " + c.bounds_text() + ", got " + n.text);
}

}  // namespace

std::string Check::bounds_text() const {
  std::vector<std::string> parts;
  if (gt_) parts.push_back("> " + number_text(*gt_));
  if (ge_) parts.push_back(">= " + number_text(*ge_));
  if (lt_) parts.push_back("< " + number_text(*lt_));
  if (le_) parts.push_back("<= " + number_text(*le_));
  return join(parts, " and ");
}

void fail(const ReadState& st, const std::string& path, size_t offset, const std::string& what,
          const std::string& hint) {
  throw InputError(path, what + " (at " + st.doc.location(offset) + ")", hint);
}

void read_value(const ReadState& st, const std::string& path, const JsonNode& n, bool& out, const Check&) {
  if (n.is_bool()) {
    out = n.boolean;
    return;
  }
  std::string hint;
  if (n.is_string() && (n.text == "true" || n.text == "false"))
    hint = "write " + n.text + " without quotes; a quoted \"" + n.text + "\" is a string";
  else if (n.is_number() && (n.text == "0" || n.text == "1"))
    hint = std::string("write ") + (n.text == "1" ? "true" : "false");
  else
    hint = "write true or false";
  fail(st, path, n.offset, "expected true or false, got " + describe_json_value(n), hint);
}

void read_value(const ReadState& st, const std::string& path, const JsonNode& n, int64_t& out, const Check& c) {
  if (!n.is_number()) {
    std::string hint = "write an integer";
    long long v;
    if (n.is_string() && parse_int64(n.text, v)) hint = "write " + n.text + " without quotes";
    fail(st, path, n.offset, "expected an integer, got " + describe_json_value(n), hint);
  }
  if (n.is_integer_literal()) {
    long long v;
    if (!parse_int64(n.text, v)) fail(st, path, n.offset, "integer out of range: " + n.text);
    out = v;
  } else {
    double d;
    if (!parse_double(n.text, d)) fail(st, path, n.offset, "number out of range: " + n.text);
    bool integral = std::floor(d) == d && std::fabs(d) < 9.2e18;
    if (!c.sized_ || !integral) {
      std::string hint = integral ? "write " + value_text(static_cast<int64_t>(d)) : "write a whole number";
      fail(st, path, n.offset, "expected an integer, got the number " + n.text, hint);
    }
    out = static_cast<int64_t>(d);
  }
  check_bounds(st, path, n, static_cast<double>(out), c);
}

void read_value(const ReadState& st, const std::string& path, const JsonNode& n, double& out, const Check& c) {
  if (!n.is_number()) {
    std::string hint = "write a number";
    double v;
    if (n.is_string() && parse_double(n.text, v)) hint = "write " + n.text + " without quotes";
    fail(st, path, n.offset, "expected a number, got " + describe_json_value(n), hint);
  }
  if (!parse_double(n.text, out)) fail(st, path, n.offset, "number out of range: " + n.text);
  check_bounds(st, path, n, out, c);
}

void read_value(const ReadState& st, const std::string& path, const JsonNode& n, std::string& out,
                const Check&) {
  if (!n.is_string()) fail(st, path, n.offset, "expected a string, got " + describe_json_value(n));
  out = n.text;
}

void read_value(const ReadState& st, const std::string& path, const JsonNode& n,
                std::vector<std::string>& out, const Check& c) {
  if (!n.is_array()) fail(st, path, n.offset, "expected an array of strings, got " + describe_json_value(n));
  out.clear();
  for (size_t i = 0; i < n.items.size(); ++i) {
    std::string s;
    read_value(st, path + "[" + std::to_string(i) + "]", n.items[i], s, c);
    out.push_back(std::move(s));
  }
}

size_t read_enum_index(const ReadState& st, const std::string& path, const JsonNode& n,
                       const std::vector<std::string>& names, bool icase,
                       const std::vector<std::string>& unsupported, const std::string& what) {
  std::vector<std::string> valid;
  for (const std::string& name : names)
    if (!name.empty()) valid.push_back("\"" + name + "\"");
  if (!n.is_string())
    fail(st, path, n.offset, "expected one of " + join(valid, ", ") + ", got " + describe_json_value(n));
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) continue;
    if (names[i] == n.text || (icase && lower(names[i]) == lower(n.text))) return i;
  }
  for (const std::string& u : unsupported) {
    if (u == n.text || (icase && lower(u) == lower(n.text)))
      fail(st, path, n.offset, what + " \"" + n.text + "\" is not supported", "supported: " + join(valid, ", "));
  }
  std::vector<std::string> plain;
  for (const std::string& name : names)
    if (!name.empty()) plain.push_back(name);
  // Compare lower-cased so that a near miss in case only ("warmuplr") also finds its name.
  std::vector<std::string> lowered;
  for (const std::string& p : plain) lowered.push_back(lower(p));
  std::string near_lower = nearest_word(lower(n.text), lowered);
  std::string near;
  for (size_t i = 0; i < lowered.size(); ++i)
    if (!near_lower.empty() && lowered[i] == near_lower) near = plain[i];
  std::string hint = near.empty() ? "valid: " + join(valid, ", ") : "did you mean \"" + near + "\"?";
  fail(st, path, n.offset, "unknown " + what + " \"" + n.text + "\"", hint);
}

void check_keys(const ReadState& st, const JsonNode& obj, const std::string& path, const KeyCollector& keys) {
  struct Offender {
    const JsonMember* member;
    const KeyCollector::Refused* refused;
  };
  std::vector<Offender> offenders;
  for (const JsonMember& m : obj.members) {
    const KeyCollector::Refused* refused = nullptr;
    for (const auto& r : keys.refused)
      if (r.key == m.key) refused = &r;
    bool known = false;
    for (const std::string& k : keys.keys) known = known || k == m.key;
    if (refused || !known) offenders.push_back({&m, refused});
  }
  if (offenders.empty()) return;
  const Offender& first = offenders.front();
  std::string key_path = json_path_join(path, first.member->key);
  std::string what, hint;
  if (first.refused) {
    what = first.refused->problem;
    hint = first.refused->hint;
  } else {
    what = "unknown key \"" + first.member->key + "\"" + (path.empty() ? " at the top level" : " in " + path);
    hint = suggestion_hint(first.member->key, keys.keys);
  }
  if (offenders.size() > 1) {
    std::vector<std::string> others;
    for (size_t i = 1; i < offenders.size(); ++i) others.push_back(offenders[i].member->key);
    what += "; also not accepted here: " + join(others, ", ");
  }
  fail(st, key_path, first.member->key_offset, what, hint);
}

void write_value(JsonWriter& w, bool v) { w.Bool(v); }
void write_value(JsonWriter& w, int64_t v) { w.Int64(v); }
void write_value(JsonWriter& w, double v) { w.Double(v); }
void write_value(JsonWriter& w, const std::string& v) { w.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size())); }
void write_value(JsonWriter& w, const std::vector<std::string>& v) {
  w.StartArray();
  for (const std::string& s : v) write_value(w, s);
  w.EndArray();
}

}  // namespace fm::runtime::schema
