#include "data/tokenizer/decoders.h"

#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/unicode.h"

namespace fm::data::hf {

namespace {

using Tokens = std::vector<std::string>;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "<0xNN>" token. Parsing follows Rust's u8::from_str_radix on the two characters,
// which also takes "+N".
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  if (t[3] == '+') return hex_digit(t[4]);
  int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

Tokens byte_fallback(Tokens tokens) {
  Tokens out;
  std::string bytes;
  auto flush = [&] {
    if (bytes.empty()) return;
    if (is_valid_utf8(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
  };
  for (std::string& t : tokens) {
    int b = fallback_byte(t);
    if (b >= 0) {
      bytes.push_back(static_cast<char>(b));
    } else {
      flush();
      out.push_back(std::move(t));
    }
  }
  flush();
  return out;
}

std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> cps;
  uint32_t len;
  for (size_t i = 0; i < s.size(); i += len) cps.push_back(decode_utf8(s.data(), i, len));
  return cps;
}

Tokens strip(Tokens tokens, uint32_t ch, size_t start, size_t stop) {
  for (std::string& t : tokens) {
    std::vector<uint32_t> cps = code_points(t);
    size_t begin = 0, end = cps.size();
    while (begin < start && begin < cps.size() && cps[begin] == ch) ++begin;
    for (size_t k = 0; k < stop && end > begin && cps[end - 1] == ch; ++k) --end;
    std::string out;
    for (size_t i = begin; i < end; ++i) append_utf8(out, cps[i]);
    t = std::move(out);
  }
  return tokens;
}

Tokens byte_level(const Tokens& tokens) {
  const ByteLevelAlphabet& alphabet = byte_level_alphabet();
  std::string bytes, raw;
  for (const std::string& t : tokens) {
    // A token with a character outside the alphabet is taken as it is written.
    if (alphabet.to_bytes(t, raw)) bytes += raw;
    else bytes += t;
  }
  return Tokens{repair_utf8(bytes)};
}

Tokens metaspace(Tokens tokens, uint32_t replacement, bool drop_in_first) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    std::string out;
    for (uint32_t cp : code_points(tokens[i])) {
      if (cp != replacement) append_utf8(out, cp);
      else if (!(i == 0 && drop_in_first)) out.push_back(' ');
    }
    tokens[i] = std::move(out);
  }
  return tokens;
}

}  // namespace

std::string decode_tokens(const std::vector<DecoderStep>& steps, bool has_decoder, Tokens tokens) {
  std::string text;
  if (!has_decoder) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) text.push_back(' ');
      text += tokens[i];
    }
    return text;
  }
  std::string scratch;
  for (const DecoderStep& step : steps) {
    switch (step.kind) {
      case DecoderStep::Kind::kReplace:
        for (std::string& t : tokens) {
          replace_all(t, step.pattern, step.content, scratch);
          t.swap(scratch);
        }
        break;
      case DecoderStep::Kind::kByteFallback:
        tokens = byte_fallback(std::move(tokens));
        break;
      case DecoderStep::Kind::kFuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens = Tokens{std::move(all)};
        break;
      }
      case DecoderStep::Kind::kStrip:
        tokens = strip(std::move(tokens), step.character, step.start, step.stop);
        break;
      case DecoderStep::Kind::kByteLevel:
        tokens = byte_level(tokens);
        break;
      case DecoderStep::Kind::kMetaspace:
        tokens = metaspace(std::move(tokens), step.character, step.drop_in_first);
        break;
    }
  }
  for (const std::string& t : tokens) text += t;
  return text;
}

}  // namespace fm::data::hf
