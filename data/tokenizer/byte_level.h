// The byte-level alphabet of GPT-2 style tokenizers: every byte is shown as one printable code
// point (printable Latin-1 bytes as themselves, the other 68 bytes as U+0100..U+0143 in byte
// order), so that vocabularies of arbitrary bytes can be stored as JSON text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace fm::data::hf {

class ByteLevelAlphabet {
 public:
  ByteLevelAlphabet();
  uint32_t char_of(uint8_t byte) const { return char_of_[byte]; }
  // The byte a code point stands for, or -1 when it is not in the alphabet.
  int byte_of(uint32_t cp) const { return cp < byte_of_.size() ? byte_of_[cp] : -1; }
  // Text in the alphabet -> raw bytes; false when a character is outside the alphabet.
  bool to_bytes(std::string_view text, std::string& out) const;
  std::string to_text(std::string_view bytes) const;

 private:
  std::array<uint32_t, 256> char_of_{};
  std::array<int16_t, 0x144> byte_of_{};
};

const ByteLevelAlphabet& byte_level_alphabet();

}  // namespace fm::data::hf
