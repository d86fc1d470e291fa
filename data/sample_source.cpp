#include "data/sample_source.h"

#include <vector>

namespace fm::data {

int64_t SampleSource::num_targets(int64_t index) const {
  const int n = seq_len() + 1;
  std::vector<int32_t> tokens(n);
  std::vector<uint8_t> mask(n);
  read(index, tokens.data(), mask.data());
  int64_t count = 0;
  for (int t = 1; t < n; ++t) count += mask[t] != 0;
  return count;
}

}  // namespace fm::data
