// manifest.json: what a checkpoint holds, written last by rank 0 (docs/checkpoints.md).
//
// It records the training state that is not tensors (steps, scheduler, loader, RNG, loss
// scaler), the model's config.json, the layout the checkpoint was written under (for
// information: any layout can read it), and every shard file with its size, XXH64 checksum and
// the flat range of its stage it holds. From those ranges and the model config the reader knows
// which tensor pieces each file holds without opening it.
//
// parse_manifest() checks every field's presence and type; a problem is an InputError naming the
// manifest file and the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"
#include "zero/loss_scaler.h"

namespace fm::checkpoint {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kFormatName = "fmengine-checkpoint";
inline constexpr const char* kManifestFile = "manifest.json";

// The parallel layout a checkpoint was written under.
struct Topology {
  int pipe = 1, dp = 1, zero_stage = 0, world = 1;
  std::vector<int> stage_layers;  // pipe + 1 layer boundaries: stage s holds [b[s], b[s+1])
  bool operator==(const Topology&) const = default;
};

// fp16 loss scaling: the scaler's own state (zero/loss_scaler.h).
using LossScalerState = zero::LossScalerState;

// The non-tensor training state. JSON fields hold JSON text ("" = absent).
struct TrainState {
  int64_t global_step = 0;      // steps run (the checkpoint's tag is global_step<global_step>)
  int64_t optimizer_steps = 0;  // AdamOptimizer::step_count (applied updates)
  int64_t scheduler_t = -1;     // LrSchedule::last_batch_iteration
  int64_t skipped_steps = 0;    // steps without an update (non-finite gradients, fp16 overflow)
  std::string loader_json;      // data::loader_state_to_json
  std::string rng_json;         // random generator states, when the run has any
  std::optional<LossScalerState> loss_scaler;
  std::string config_hash;  // of the resolved training config, to notice a changed config
  std::string tokenizer;    // tokenizer path the run used ("" = unknown), for export
  std::string extra_json;   // free-form, for the engine's future needs
  bool operator==(const TrainState&) const = default;
};

// One shard file: the values of the flat range [begin, end) of stage `stage`'s buffer (layers
// [layer_begin, layer_end)), tied replicas left out.
struct ShardRecord {
  std::string file;  // name within the checkpoint directory
  int stage = 0, dp_rank = 0;
  int layer_begin = 0, layer_end = 0;
  int64_t begin = 0, end = 0;
  bool optimizer_state = false;  // holds exp_avg and exp_avg_sq besides params
  int64_t bytes = 0;
  uint64_t checksum = 0;  // XXH64 of the whole file
  bool operator==(const ShardRecord&) const = default;
};

struct Manifest {
  std::string tag;  // "global_step<N>"
  TrainState state;
  std::string model_config_json;  // Hugging Face config.json text
  model::LlamaConfig model;       // parsed from it
  Topology topology;
  std::vector<ShardRecord> files;
  std::string created;  // UTC time of the commit, ISO 8601
  std::string fmengine_version;
  std::string path;  // the manifest file it was read from ("" when built in memory)

  bool has_optimizer_state() const;  // every file holds the moments
};

std::string manifest_to_json(const Manifest& m);
Manifest parse_manifest(std::string_view text, const std::string& path);
// Reads <dir>/manifest.json.
Manifest read_manifest(const std::string& dir);

// "global_step<N>", and back (nullopt for any other name, e.g. "global_step12.tmp-ab").
std::string step_tag(int64_t step);
std::optional<int64_t> parse_step_tag(std::string_view name);

// The first config.json field in which two model configs differ, with both values as text;
// nullopt when equal. shapes_only compares what decides the tensors (sizes, heads, vocabulary,
// tying); the full comparison adds what changes the computation (norm epsilon, RoPE).
struct ConfigDifference {
  std::string field, a, b;
};
std::optional<ConfigDifference> model_config_difference(const model::LlamaConfig& a,
                                                        const model::LlamaConfig& b, bool shapes_only);

}  // namespace fm::checkpoint
