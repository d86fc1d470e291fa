// Unicode pieces the tokenizer needs, without a regex engine or ICU.
//
//  - General categories of every code point (two-stage table generated from Python's unicodedata by
//    gen_unicode_tables.py; the Unicode version is kUnicodeVersion), and the classes the
//    pre-tokenizer patterns use: \p{L}, \p{N}, \s and \w.
//  - UTF-8: decoding a code point from valid text, encoding one, validation, and the repair of
//    invalid input: every maximal invalid subsequence becomes one U+FFFD, exactly as Python's
//    bytes.decode("utf-8", errors="replace") and Rust's String::from_utf8_lossy do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fm::data::hf {

// The order of gen_unicode_tables.py's CATEGORIES.
enum class Category : uint8_t {
  Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf, Po, Sm, Sc, Sk, So, Zs, Zl,
  Zp, Cc, Cf, Cs, Co
};

extern const char kUnicodeVersion[];
extern const uint16_t kCategoryStage1[0x110000 / 128];
extern const uint8_t kCategoryStage2[];

inline constexpr uint8_t kExtraWordFlag = 0x20;

inline uint8_t category_byte(uint32_t cp) {
  if (cp >= 0x110000) return 0;
  return kCategoryStage2[static_cast<size_t>(kCategoryStage1[cp >> 7]) * 128 + (cp & 127)];
}
inline Category category(uint32_t cp) { return static_cast<Category>(category_byte(cp) & 0x1f); }

inline bool is_letter(uint32_t cp) {  // \p{L}
  Category c = category(cp);
  return c >= Category::Lu && c <= Category::Lo;
}
inline bool is_number(uint32_t cp) {  // \p{N}
  Category c = category(cp);
  return c >= Category::Nd && c <= Category::No;
}
// \s of Oniguruma and of Rust's regex (the White_Space property): tab..carriage return, U+0085,
// and the separators Zs, Zl, Zp.
inline bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
  if (cp == 0x85) return true;
  Category c = category(cp);
  return c == Category::Zs || c == Category::Zl || c == Category::Zp;
}
// \w of Rust's regex: Alphabetic, marks, decimal digits, connector punctuation, joiners.
bool is_word_char(uint32_t cp);

// --- UTF-8 -----------------------------------------------------------------------------------

// Decodes the code point starting at s[i] of VALID UTF-8 text; `len` receives its byte length.
inline uint32_t decode_utf8(const char* s, size_t i, uint32_t& len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s) + i;
  unsigned char b = p[0];
  if (b < 0x80) { len = 1; return b; }
  if (b < 0xE0) { len = 2; return (uint32_t(b & 0x1f) << 6) | (p[1] & 0x3f); }
  if (b < 0xF0) { len = 3; return (uint32_t(b & 0x0f) << 12) | (uint32_t(p[1] & 0x3f) << 6) | (p[2] & 0x3f); }
  len = 4;
  return (uint32_t(b & 0x07) << 18) | (uint32_t(p[1] & 0x3f) << 12) | (uint32_t(p[2] & 0x3f) << 6) |
         (p[3] & 0x3f);
}
// Start of the code point that ends right before byte `end` of valid UTF-8 text.
inline size_t previous_char_start(const char* s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

void append_utf8(std::string& out, uint32_t cp);

// Length of the longest valid UTF-8 prefix of `text` (== text.size() when all of it is valid).
size_t valid_utf8_prefix(std::string_view text);
inline bool is_valid_utf8(std::string_view text) { return valid_utf8_prefix(text) == text.size(); }

// `text` with each maximal invalid subsequence replaced by U+FFFD (Python's errors="replace").
std::string repair_utf8(std::string_view text);

// `out` = `text` with every occurrence of the non-empty `from` replaced by `to`, left to right.
void replace_all(std::string_view text, std::string_view from, std::string_view to, std::string& out);

}  // namespace fm::data::hf
