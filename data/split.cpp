#include "data/split.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::data {

SplitWeights parse_split(const std::string& text, const std::string& where) {
  const std::string hint = "give up to three weights for train, validation and test, e.g. 969,30,1";
  SplitWeights s;
  s.weights = {0, 0, 0};
  size_t start = 0;
  int count = 0;
  while (true) {
    size_t end = text.find_first_of(",/", start);
    std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    double v;
    if (count == 3)
      throw InputError(where, fmt::format("'{}' has more than three parts", text), hint);
    if (!parse_double(part, v) || v < 0)
      throw InputError(where, fmt::format("'{}' is not a non-negative number (in '{}')", part, text), hint);
    s.weights[count++] = v;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (s.weights[0] + s.weights[1] + s.weights[2] <= 0)
    throw InputError(where, fmt::format("the weights of '{}' sum to zero", text), hint);
  return s;
}

std::array<ItemRange, 3> split_ranges(int64_t n, const SplitWeights& split) {
  const double total = split.weights[0] + split.weights[1] + split.weights[2];
  std::array<ItemRange, 3> r;
  double cumulative = 0;
  int64_t begin = 0;
  for (int i = 0; i < 3; ++i) {
    cumulative += split.weights[i];
    int64_t end = i == 2 ? n : static_cast<int64_t>(std::llround(static_cast<double>(n) * cumulative / total));
    end = std::max(begin, std::min(end, n));
    r[i] = {begin, end};
    begin = end;
  }
  return r;
}

}  // namespace fm::data
