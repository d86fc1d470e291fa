// Train/validation/test splits, as Megatron's and Fast-LLM's --split: "969,30,1" gives the three
// parts relative weights. A dataset of n items (documents of a shard, windows of a token file) is
// cut into three contiguous ranges in file order; the boundaries are round(n * cumulative weight /
// total), so the parts are disjoint, cover everything, and differ from the exact proportions by
// less than one item each.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace fm::data {

struct SplitWeights {
  std::array<double, 3> weights{969, 30, 1};
};

struct ItemRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

inline constexpr const char* kSplitNames[3] = {"train", "validation", "test"};

// Accepts 1 to 3 non-negative numbers separated by ',' or '/' (missing ones are 0) with a positive
// sum; anything else is an InputError at `where`.
SplitWeights parse_split(const std::string& text, const std::string& where = "--split");
std::array<ItemRange, 3> split_ranges(int64_t n, const SplitWeights& split);

}  // namespace fm::data
