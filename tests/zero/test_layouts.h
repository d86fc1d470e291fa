// Small parameter layouts for the zero/ tests.
#pragma once

#include <string>
#include <vector>

#include "model/param_layout.h"

namespace fm::zero::testing {

struct TensorSpec {
  std::string name;
  int64_t numel;
  bool decay = true;
  bool replica = false;
};

inline model::ParamLayout layout_of(const std::vector<TensorSpec>& specs) {
  model::ParamLayout layout;
  for (const TensorSpec& s : specs) {
    model::ParamInfo p;
    p.name = s.name;
    p.rows = s.numel;
    p.offset = layout.total;
    p.decay = s.decay;
    p.replica = s.replica;
    if (s.replica) p.tied_key = "embed";
    layout.total += s.numel;
    layout.params.push_back(p);
  }
  return layout;
}

// A head stage of a tied-embedding model: a decoder layer, the final norm and the table replica.
inline model::ParamLayout head_stage_layout() {
  return layout_of({{"layers.1.input_layernorm", 8, false},
                    {"layers.1.qkv", 96, true},
                    {"layers.1.o_proj", 64, true},
                    {"layers.1.post_attention_layernorm", 8, false},
                    {"layers.1.gateup", 128, true},
                    {"layers.1.down_proj", 64, true},
                    {"norm", 8, false},
                    {"embed_tokens", 40, true, true}});
}

}  // namespace fm::zero::testing
