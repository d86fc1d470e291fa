#include "data/tokenizer/tokenizer.h"

namespace fm::data {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() + 1);
  if (add_special_tokens) ids.push_back(kBos);
  for (unsigned char ch : text) ids.push_back(ch);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string out;
  out.reserve(ids.size());
  for (int32_t id : ids) {
    if (id >= 0 && id < 256) out.push_back(static_cast<char>(id));
    else if (!skip_special_tokens) out += id == kBos ? "<bos>" : id == kEos ? "<eos>" : "<unk>";
  }
  return out;
}

}  // namespace fm::data
