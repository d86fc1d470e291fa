#include "data/tokenizer/byte_level.h"

#include "data/tokenizer/unicode.h"

namespace fm::data::hf {

ByteLevelAlphabet::ByteLevelAlphabet() {
  byte_of_.fill(-1);
  auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
  uint32_t next = 0x100;
  for (int b = 0; b < 256; ++b) {
    char_of_[b] = printable(b) ? static_cast<uint32_t>(b) : next++;
    byte_of_[char_of_[b]] = static_cast<int16_t>(b);
  }
}

bool ByteLevelAlphabet::to_bytes(std::string_view text, std::string& out) const {
  out.clear();
  for (size_t i = 0; i < text.size();) {
    uint32_t len;
    int b = byte_of(decode_utf8(text.data(), i, len));
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += len;
  }
  return true;
}

std::string ByteLevelAlphabet::to_text(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, char_of_[b]);
  return out;
}

const ByteLevelAlphabet& byte_level_alphabet() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

}  // namespace fm::data::hf
