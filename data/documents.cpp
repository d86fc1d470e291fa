#include "data/documents.h"

#include <cstring>

#include <fmt/format.h>

#include "runtime/base/error.h"

namespace fm::data {

InMemoryDocuments::InMemoryDocuments(std::string description, std::vector<int32_t> tokens,
                                     std::vector<int64_t> starts)
    : description_(std::move(description)), tokens_(std::move(tokens)), starts_(std::move(starts)) {
  FM_CHECK(!starts_.empty() && starts_.front() == 0 && starts_.back() == num_tokens(),
           "document starts must run from 0 to the token count");
}

void InMemoryDocuments::copy_tokens(int64_t first, int64_t count, int32_t* out) const {
  FM_CHECK(first >= 0 && count >= 0 && first + count <= num_tokens());
  std::memcpy(out, tokens_.data() + first, sizeof(int32_t) * count);
}

std::string InMemoryDocuments::locate_token(int64_t token) const {
  return fmt::format("{}: token {}", description_, token);
}

}  // namespace fm::data
