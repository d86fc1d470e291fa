#include "data/tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "data/tokenizer/unicode.h"

namespace fm::data::hf {

AddedTokenMatcher::AddedTokenMatcher(std::vector<std::string> patterns, std::vector<AddedToken> tokens)
    : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < patterns.size(); ++t) {
    const std::string& p = patterns[t];
    if (p.empty()) continue;
    first_byte_[static_cast<unsigned char>(p[0])] = true;
    uint32_t node = 0;
    for (unsigned char b : p) {
      uint32_t child = 0;
      for (const auto& [byte, next] : nodes_[node].children)
        if (byte == b) child = next;
      if (child == 0) {
        child = static_cast<uint32_t>(nodes_.size());
        nodes_[node].children.emplace_back(b, child);
        nodes_.emplace_back();
      }
      node = child;
    }
    // Two tokens with one pattern: the first one given wins, as with Aho-Corasick.
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
  int distinct = 0;
  for (int b = 0; b < 256; ++b) {
    if (first_byte_[b]) {
      ++distinct;
      single_first_byte_ = b;
    }
  }
  if (distinct != 1) single_first_byte_ = -1;
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t pos, size_t& end) const {
  int32_t found = -1;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    unsigned char b = static_cast<unsigned char>(text[i]);
    uint32_t child = 0;
    for (const auto& [byte, next] : nodes_[node].children)
      if (byte == b) child = next;
    if (child == 0) break;
    node = child;
    if (nodes_[node].token >= 0) {
      found = nodes_[node].token;
      end = i + 1;
    }
  }
  return found;
}

namespace {

bool last_char_is_word(std::string_view s) {
  if (s.empty()) return false;
  size_t i = previous_char_start(s.data(), s.size());
  uint32_t len;
  return is_word_char(decode_utf8(s.data(), i, len));
}

bool first_char_is_word(std::string_view s) {
  if (s.empty()) return false;
  uint32_t len;
  return is_word_char(decode_utf8(s.data(), 0, len));
}

// Start of the whitespace run that ends `s`.
size_t trailing_space_start(std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    size_t i = previous_char_start(s.data(), end);
    uint32_t len;
    if (!is_whitespace(decode_utf8(s.data(), i, len))) break;
    end = i;
  }
  return end;
}

size_t leading_space_length(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    uint32_t len;
    if (!is_whitespace(decode_utf8(s.data(), i, len))) break;
    i += len;
  }
  return i;
}

}  // namespace

void AddedTokenMatcher::split(std::string_view text, std::vector<Piece>& out) const {
  out.clear();
  size_t consumed = 0;  // end of the last piece emitted
  size_t pos = 0;
  while (pos < text.size() && !tokens_.empty()) {
    if (single_first_byte_ >= 0) {
      const void* hit = std::memchr(text.data() + pos, single_first_byte_, text.size() - pos);
      if (hit == nullptr) break;
      pos = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    } else if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    size_t stop = 0;
    int32_t t = longest_at(text, pos, stop);
    if (t < 0) {
      ++pos;
      continue;
    }
    size_t start = pos;
    pos = stop;  // the next search starts after this match, even when it is discarded below
    const AddedToken& token = tokens_[static_cast<size_t>(t)];
    if (token.single_word) {
      bool space_before = start == 0 || !last_char_is_word(text.substr(0, start));
      bool space_after = stop == text.size() || !first_char_is_word(text.substr(stop));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text.substr(0, start)), consumed);
    if (token.rstrip) stop += leading_space_length(text.substr(stop));
    if (consumed < start) out.push_back({consumed, start, -1});
    out.push_back({start, stop, token.id});
    consumed = stop;
  }
  if (consumed != text.size() || text.empty()) out.push_back({consumed, text.size(), -1});
}

}  // namespace fm::data::hf
