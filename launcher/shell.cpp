#include "launcher/shell.h"

#include "runtime/base/error.h"

namespace fm::launcher {
namespace {

bool is_safe_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == '/' || c == ',' || c == ':' || c == '@' || c == '+' || c == '=' ||
         c == '%';
}

}  // namespace

std::string shell_quote(std::string_view word) {
  bool safe = !word.empty();
  for (char c : word) safe = safe && is_safe_char(c);
  // A leading '=' or '%' is harmless in sh but confuses some shells' job syntax; quote it anyway.
  if (safe && word.front() != '=' && word.front() != '%') return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

std::string shell_join(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) out += ' ';
    out += shell_quote(words[i]);
  }
  return out;
}

std::vector<std::string> shell_split(std::string_view text, const std::string& where) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  size_t i = 0;
  const size_t n = text.size();
  while (i < n) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (in_word) words.push_back(std::move(cur)), cur.clear(), in_word = false;
      ++i;
    } else if (c == '\'') {
      in_word = true;
      size_t end = text.find('\'', i + 1);
      if (end == std::string_view::npos)
        throw InputError(where, "unterminated single quote in '" + std::string(text) + "'",
                         "close the quote; the value is split into words like a shell would");
      cur.append(text.substr(i + 1, end - i - 1));
      i = end + 1;
    } else if (c == '"') {
      in_word = true;
      ++i;
      bool closed = false;
      while (i < n) {
        char d = text[i];
        if (d == '"') {
          closed = true;
          ++i;
          break;
        }
        if (d == '\\' && i + 1 < n &&
            (text[i + 1] == '\\' || text[i + 1] == '"' || text[i + 1] == '$' || text[i + 1] == '`' ||
             text[i + 1] == '\n')) {
          if (text[i + 1] != '\n') cur += text[i + 1];
          i += 2;
          continue;
        }
        cur += d;
        ++i;
      }
      if (!closed)
        throw InputError(where, "unterminated double quote in '" + std::string(text) + "'",
                         "close the quote; the value is split into words like a shell would");
    } else if (c == '\\') {
      in_word = true;
      if (i + 1 >= n)
        throw InputError(where, "trailing backslash in '" + std::string(text) + "'",
                         "escape it as \\\\ or quote the word");
      if (text[i + 1] != '\n') cur += text[i + 1];
      i += 2;
    } else {
      in_word = true;
      cur += c;
      ++i;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

}  // namespace fm::launcher
