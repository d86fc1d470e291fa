// Decoders of `tokenizers`: token strings -> text, as a chain of steps over the list of tokens.
//   Replace (a literal string), ByteFallback (<0xNN> runs -> bytes; an invalid run gives one
//   U+FFFD per byte), Fuse (one token), Strip (up to `start`/`stop` copies of a character at each
//   end of every token), ByteLevel (alphabet -> bytes, then lossy UTF-8 of the whole), Metaspace
//   (the replacement character -> space; dropped in the first token unless prepend_scheme is never).
// Without a decoder, tokens are joined with spaces.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fm::data::hf {

struct DecoderStep {
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kByteLevel, kMetaspace };
  Kind kind = Kind::kFuse;
  std::string pattern, content;   // Replace
  uint32_t character = 0;         // Strip: the character; Metaspace: the replacement
  size_t start = 0, stop = 0;     // Strip
  bool drop_in_first = false;     // Metaspace: prepend_scheme is not "never"
};

// `steps` empty and `has_decoder` false: the tokens joined with spaces.
std::string decode_tokens(const std::vector<DecoderStep>& steps, bool has_decoder,
                          std::vector<std::string> tokens);

}  // namespace fm::data::hf
