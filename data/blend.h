// BlendedSource: several datasets mixed by weight, as Megatron's --data_path "0.3 A 0.7 B".
//
// One epoch of the blend holds N = the sum of the parts' sizes samples. Position p of the epoch
// is given to the dataset d that is furthest behind its share, i.e. that maximises
// weight_d * (p + 1) - taken_d (ties: the earlier dataset), so every prefix of the blend is as
// close to the weights as whole samples allow. Dataset d's j-th position in epoch e reads its
// sample e * n_d + j (n_d: its positions per epoch), so a dataset given less than its own size per
// epoch continues where the previous epoch stopped and one given more repeats (wrapping).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/sample_source.h"

namespace fm::data {

class BlendedSource final : public SampleSource {
 public:
  // Weights must be positive (they are normalised); every source needs the same seq_len and at
  // least one sample.
  BlendedSource(std::vector<std::shared_ptr<const SampleSource>> sources, std::vector<double> weights);
  std::string describe() const override;
  int seq_len() const override { return sources_.front()->seq_len(); }
  int64_t size() const override { return static_cast<int64_t>(choice_.size()); }
  void read(int64_t index, int32_t* tokens, uint8_t* target_mask) const override;
  int64_t num_targets(int64_t index) const override;
  std::string locate(int64_t index, int pos) const override;

  // Which part sample `index` comes from, and that part's sample index.
  int part_of(int64_t index) const;
  int64_t part_index(int64_t index) const;
  const std::vector<double>& weights() const { return weights_; }

 private:
  std::vector<std::shared_ptr<const SampleSource>> sources_;
  std::vector<double> weights_;
  std::vector<uint16_t> choice_;     // dataset of each position of an epoch
  std::vector<uint32_t> rank_;       // how many earlier positions of the epoch went to that dataset
  std::vector<int64_t> per_epoch_;   // positions per epoch of each dataset
};

}  // namespace fm::data
