#include "data/tokenizer/split_patterns.h"

#include <array>
#include <cstdint>

#include "data/tokenizer/unicode.h"

namespace fm::data::hf {

namespace {

constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kGpt2Regex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// The classes the patterns distinguish. kNewline is \r or \n; kSpace the rest of \s.
enum Class : uint8_t { kLetter, kNumber, kSpace, kNewline, kOther };

struct AsciiClasses {
  std::array<uint8_t, 128> cls{};
  AsciiClasses() {
    for (int c = 0; c < 128; ++c) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) cls[c] = kLetter;
      else if (c >= '0' && c <= '9') cls[c] = kNumber;
      else if (c == '\r' || c == '\n') cls[c] = kNewline;
      else if (c == ' ' || (c >= 0x09 && c <= 0x0d)) cls[c] = kSpace;
      else cls[c] = kOther;
    }
  }
};
const AsciiClasses kAscii;

struct CharInfo {
  Class cls;
  uint32_t len;
};

inline CharInfo char_at(std::string_view t, size_t i) {
  unsigned char b = static_cast<unsigned char>(t[i]);
  if (b < 0x80) return {static_cast<Class>(kAscii.cls[b]), 1};
  uint32_t len;
  uint32_t cp = decode_utf8(t.data(), i, len);
  if (is_letter(cp)) return {kLetter, len};
  if (is_number(cp)) return {kNumber, len};
  if (is_whitespace(cp)) return {kSpace, len};
  return {kOther, len};
}

size_t run_end(std::string_view t, size_t i, Class cls) {
  while (i < t.size()) {
    CharInfo c = char_at(t, i);
    if (c.cls != cls) break;
    i += c.len;
  }
  return i;
}

// Length of the contraction ('s, 't, 're, 've, 'm, 'll, 'd) after the apostrophe at t[i], or 0.
// Case-insensitive matching folds U+017F (long s) to s as Oniguruma does; no other character
// folds to these letters.
size_t contraction_after(std::string_view t, size_t i, bool ignore_case) {
  size_t k = i + 1, n = t.size();
  if (k >= n) return 0;
  auto is = [&](size_t at, char lower) {
    if (at >= n) return false;
    char c = t[at];
    return c == lower || (ignore_case && c == lower - 'a' + 'A');
  };
  if (is(k, 's') || is(k, 't') || is(k, 'm') || is(k, 'd')) return 2;
  if ((is(k, 'r') || is(k, 'v')) && is(k + 1, 'e')) return 3;
  if (is(k, 'l') && is(k + 1, 'l')) return 3;
  if (ignore_case && k + 1 < n && t[k] == '\xC5' && t[k + 1] == '\xBF') return 3;  // U+017F
  return 0;
}

// \s+(?!\S)|\s+ from i, where t[i] is whitespace. When `newline_rule`, \s*[\r\n]+ comes first:
// it ends right after the last newline of the run.
size_t whitespace_match(std::string_view t, size_t i, bool newline_rule) {
  size_t e = i, last_start = i, last_newline = std::string_view::npos, count = 0;
  while (e < t.size()) {
    CharInfo c = char_at(t, e);
    if (c.cls != kSpace && c.cls != kNewline) break;
    if (c.cls == kNewline) last_newline = e;
    last_start = e;
    e += c.len;
    ++count;
  }
  if (newline_rule && last_newline != std::string_view::npos) return last_newline + 1;
  if (e == t.size() || count < 2) return e;
  return last_start;  // leave the last whitespace character to the next word
}

}  // namespace

std::optional<SplitPattern> split_pattern_of(std::string_view regex) {
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  return std::nullopt;
}

size_t match_llama3(std::string_view t, size_t i) {
  const size_t n = t.size();
  if (t[i] == '\'') {
    if (size_t k = contraction_after(t, i, true)) return i + k;
  }
  CharInfo c0 = char_at(t, i);
  size_t j = i + c0.len;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0.cls == kLetter) return run_end(t, j, kLetter);
  CharInfo c1{kOther, 0};
  if (j < n) c1 = char_at(t, j);
  if ((c0.cls == kSpace || c0.cls == kOther) && j < n && c1.cls == kLetter) return run_end(t, j + c1.len, kLetter);
  // \p{N}{1,3}
  if (c0.cls == kNumber) {
    size_t e = j;
    for (int k = 1; k < 3 && e < n; ++k) {
      CharInfo c = char_at(t, e);
      if (c.cls != kNumber) break;
      e += c.len;
    }
    return e;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t start = c0.cls == kOther ? i : (t[i] == ' ' && j < n && c1.cls == kOther) ? j : n;
  if (start < n) {
    size_t e = run_end(t, start, kOther);
    while (e < n && (t[e] == '\r' || t[e] == '\n')) ++e;
    return e;
  }
  return whitespace_match(t, i, /*newline_rule=*/true);
}

size_t match_gpt2(std::string_view t, size_t i) {
  const size_t n = t.size();
  if (t[i] == '\'') {
    if (size_t k = contraction_after(t, i, false)) return i + k;
  }
  CharInfo c0 = char_at(t, i);
  size_t j = i + c0.len;
  CharInfo c1{kOther, 0};
  if (j < n) c1 = char_at(t, j);
  bool space_then = t[i] == ' ' && j < n;
  for (Class cls : {kLetter, kNumber, kOther}) {  //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
    if (c0.cls == cls) return run_end(t, j, cls);
    if (space_then && c1.cls == cls) return run_end(t, j + c1.len, cls);
  }
  return whitespace_match(t, i, /*newline_rule=*/false);
}

}  // namespace fm::data::hf
