#include "data/blend.h"

#include <cmath>

#include <fmt/format.h>

#include "runtime/base/error.h"

namespace fm::data {

BlendedSource::BlendedSource(std::vector<std::shared_ptr<const SampleSource>> sources, std::vector<double> weights)
    : sources_(std::move(sources)), weights_(std::move(weights)) {
  FM_CHECK(!sources_.empty() && sources_.size() == weights_.size() && sources_.size() <= 65535);
  double total = 0;
  int64_t n = 0;
  for (size_t d = 0; d < sources_.size(); ++d) {
    FM_CHECK(weights_[d] > 0 && std::isfinite(weights_[d]), "blend weights must be positive");
    FM_CHECK(sources_[d]->size() > 0 && sources_[d]->seq_len() == sources_[0]->seq_len());
    total += weights_[d];
    n += sources_[d]->size();
  }
  FM_CHECK(n < (int64_t{1} << 32), "a blend epoch is limited to 2^32 samples");
  for (double& w : weights_) w /= total;
  const size_t parts = sources_.size();
  choice_.resize(n);
  rank_.resize(n);
  per_epoch_.assign(parts, 0);
  for (int64_t p = 0; p < n; ++p) {
    size_t best = 0;
    double best_gap = -1e300;
    for (size_t d = 0; d < parts; ++d) {
      double gap = weights_[d] * static_cast<double>(p + 1) - static_cast<double>(per_epoch_[d]);
      if (gap > best_gap) best_gap = gap, best = d;
    }
    choice_[p] = static_cast<uint16_t>(best);
    rank_[p] = static_cast<uint32_t>(per_epoch_[best]++);
  }
}

std::string BlendedSource::describe() const {
  std::string s = fmt::format("blend of {} datasets ({} samples per epoch):", sources_.size(), size());
  for (size_t d = 0; d < sources_.size(); ++d)
    s += fmt::format("\n  {:.4f} x {}", weights_[d], sources_[d]->describe());
  return s;
}

int BlendedSource::part_of(int64_t index) const { return choice_[index % size()]; }

int64_t BlendedSource::part_index(int64_t index) const {
  const int64_t p = index % size();
  return (index / size()) * per_epoch_[choice_[p]] + rank_[p];
}

void BlendedSource::read(int64_t index, int32_t* tokens, uint8_t* target_mask) const {
  sources_[part_of(index)]->read(part_index(index), tokens, target_mask);
}

int64_t BlendedSource::num_targets(int64_t index) const {
  return sources_[part_of(index)]->num_targets(part_index(index));
}

std::string BlendedSource::locate(int64_t index, int pos) const {
  return sources_[part_of(index)]->locate(part_index(index), pos);
}

}  // namespace fm::data
