// Hand-written matchers for the pre-tokenizer regexes of byte-level BPE tokenizers, exact to
// Oniguruma's leftmost-first semantics (the engine `tokenizers` uses), over valid UTF-8:
//
//  kLlama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//  kGpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Every character is matched by one of the alternatives, so a match always starts where the
// previous one ended and the matches tile the text (the Split pre-tokenizer's "Isolated" pieces).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace fm::data::hf {

enum class SplitPattern { kLlama3, kGpt2 };

// The pattern a tokenizer.json regex names, if it is one of the supported ones.
std::optional<SplitPattern> split_pattern_of(std::string_view regex);

// End (byte offset) of the match that starts at `pos` < text.size().
size_t match_llama3(std::string_view text, size_t pos);
size_t match_gpt2(std::string_view text, size_t pos);

// Calls emit(piece) for each match, in order.
template <typename Emit>
void for_each_split(SplitPattern pattern, std::string_view text, Emit&& emit) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pattern == SplitPattern::kLlama3 ? match_llama3(text, pos) : match_gpt2(text, pos);
    emit(text.substr(pos, end - pos));
    pos = end;
  }
}

}  // namespace fm::data::hf
