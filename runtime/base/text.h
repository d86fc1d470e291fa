// Small text helpers shared by every parser that must point users at the right spelling.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace fm {

// Levenshtein distance, used for "did you mean" hints.
size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is plausibly a misspelling (distance at most a third of
// the word's length, at least 2), else "".
std::string nearest_word(std::string_view word, const std::vector<std::string>& candidates);

// `did you mean 'x'?` or a list of the valid words when nothing is near.
std::string suggestion_hint(std::string_view word, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& parts, std::string_view sep);

// Line (1-based) and column (1-based, in bytes) of a byte offset in `text`.
struct LineCol { size_t line, col; };
LineCol line_col_at(std::string_view text, size_t offset);

// Parses a whole string as an integer / floating number; false on trailing junk or overflow.
bool parse_int64(std::string_view s, long long& out);
bool parse_double(std::string_view s, double& out);

// Human-readable byte counts ("1.5 GiB") and counts ("1.10B").
std::string human_bytes(double bytes);
std::string human_count(double n);

}  // namespace fm
