// Synthetic checkpoints for the checkpoint tests and the probe: every value (parameter, exp_avg,
// exp_avg_sq) is a pure function of (kind, tensor name, element, step), so a reader under any
// layout can check exactly what it got, and a layout can be simulated in one process by writing
// the shard of every (stage, data-parallel rank) in turn.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/param_layout.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/pieces.h"
#include "runtime/checkpoint/protocol.h"
#include "runtime/checkpoint/reader.h"
#include "tests/model/test_configs.h"

namespace fm::checkpoint::testing {

// A fresh directory under the system's temporary directory, removed at the end of the scope.
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Runs fn in a forked child; returns its exit code, or 128 + the signal that ended it. An
// exception leaving fn exits 3 after printing it.
int run_in_child(const std::function<void()>& fn);

// The model tests' small configs (tests/model/test_configs.h).
inline model::LlamaConfig make_model(const model::testing::Sizes& s = {}) {
  return model::testing::make_config(s);
}

struct Layout {
  int pipe = 1, dp = 1, zero = 0;
  int world() const { return pipe * dp; }
};
Layout parse_layout(const std::string& text);  // "P,D,Z"

// Stage layer boundaries: the L+2 layers split as evenly as possible.
std::vector<int> stage_cuts(const model::LlamaConfig& c, int pipe);
Topology topology_of(const model::LlamaConfig& c, const Layout& l);

// Parameters are O(1) (norm weights near 1, matrices ~ 1/sqrt(cols)), so the model computes
// sensible logits; the moments are small and exp_avg_sq positive.
float synthetic_value(Kind kind, const std::string& name, int64_t element, int64_t cols, int64_t step);
// Elements [begin, end) of `layout`'s flat buffer (replicas equal their owner, padding zero).
void fill_synthetic(Kind kind, const model::ParamLayout& layout, int64_t begin, int64_t end, int64_t step,
                    float* out);

// The three kinds' values of [begin, end) of a stage buffer, as one rank holds them.
struct ShardBuffers {
  std::vector<float> params, exp_avg, exp_avg_sq;
};
ShardBuffers synthetic_shard(const model::ParamLayout& layout, int64_t begin, int64_t end, int64_t step);

TrainState synthetic_state(int64_t step);

// Writes the shards of every simulated rank of `l` into a begin_save directory and commits.
CommitResult save_simulated(const std::string& root, const model::LlamaConfig& c, const Layout& l,
                            int64_t step, bool optimizer_state = true, const CommitOptions& options = {},
                            const std::string& tokenizer = "");

// Checks everything a rank of layout `l` (stage, dp_rank) reads against the synthetic values of
// `step`; returns "" or a description of the first difference.
std::string check_rank(const CheckpointReader& r, const model::LlamaConfig& c, const Layout& l, int stage,
                       int dp_rank, int64_t step);

}  // namespace fm::checkpoint::testing
