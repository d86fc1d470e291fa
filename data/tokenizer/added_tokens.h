// Added (and special) tokens: found in the text before anything else, as `tokenizers`' added
// vocabulary does. Patterns are matched leftmost-longest; then each match honours its token's
// flags: single_word (dropped when a word character touches it), lstrip / rstrip (the match
// swallows the whitespace on that side). Everything between matches is ordinary text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::data::hf {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

class AddedTokenMatcher {
 public:
  struct Piece {
    size_t begin, end;
    int32_t id;  // -1: ordinary text
  };
  AddedTokenMatcher() = default;
  // `patterns[i]` is what is looked for in the text (the content, or its normalized form) of
  // `tokens[i]`.
  AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }
  // Replaces `out` with the pieces of `text` (valid UTF-8) in order; they cover the text. An
  // empty text gives one empty ordinary piece.
  void split(std::string_view text, std::vector<Piece>& out) const;

 private:
  struct Node {
    int32_t token = -1;  // index into tokens_ of the pattern ending here
    std::vector<std::pair<unsigned char, uint32_t>> children;
  };
  // The longest pattern starting at `pos`: its token index, and its end in `end`; -1 when none.
  int32_t longest_at(std::string_view text, size_t pos, size_t& end) const;
  std::vector<Node> nodes_;
  std::vector<AddedToken> tokens_;
  bool first_byte_[256] = {};
  int single_first_byte_ = -1;  // when every pattern starts with the same byte: memchr finds them
};

}  // namespace fm::data::hf
