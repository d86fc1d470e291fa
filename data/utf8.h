// UTF-8 validation for text entering the tokenizer: a document with invalid UTF-8 is reported
// (file:line) instead of being tokenized into whatever bytes happen to be there.
#pragma once

#include <cstddef>
#include <string_view>

namespace fm::data {

// Offset of the first byte that does not start or continue a valid UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are invalid), or npos if all of `s` is valid.
size_t find_invalid_utf8(std::string_view s);

}  // namespace fm::data
