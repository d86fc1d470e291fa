// Hugging Face checkpoint directories: import into a stage's flat buffer, export from the whole model.
//
// A directory holds config.json and either model.safetensors or the shards listed by
// model.safetensors.index.json ("weight_map": tensor -> shard file). Opening one validates, before
// any weight is read: the config (llama_config.h), every shard's header (safetensors.h), and that
// the tensors are exactly those of a LlamaForCausalLM of that config with the expected shapes:
// a missing tensor, an unexpected one, a wrong shape or a missing shard is an InputError naming the
// file and the tensor. Allowed besides: lm_head.weight in a tied model (ignored; the embedding is
// the weight) and rotary `inv_freq` buffers of older checkpoints (recomputed from the config).
//
// The HF <-> flat buffer mapping is ParamInfo::hf (param_layout.h): fused qkv = [q; k; v] rows,
// gateup = [gate; up] rows, everything else one tensor each.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/io/safetensors.h"
#include "model/llama_config.h"
#include "model/param_layout.h"

namespace fm::model::io {

class HfCheckpoint {
 public:
  explicit HfCheckpoint(const std::string& dir);
  ~HfCheckpoint();
  HfCheckpoint(const HfCheckpoint&) = delete;
  HfCheckpoint& operator=(const HfCheckpoint&) = delete;

  const std::string& dir() const { return dir_; }
  const LlamaConfig& config() const { return config_; }
  int64_t vocab_size() const { return config_.vocab_size; }  // for the engine's tokenizer check

  // Fills host_params (layout.total floats) with every tensor of `layout`, which must be a layout of
  // config() (any stage's), converting BF16/F16 to fp32.
  void load(const ParamLayout& layout, float* host_params) const;

 private:
  struct Located {
    const SafetensorsFile* file;
    const TensorEntry* entry;
  };
  Located locate(const std::string& hf_name) const;

  std::string dir_;
  LlamaConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::pair<std::string, Located>> tensors_;  // sorted by name
};

// The HF tensors of the parameters in `layout` (replicas skipped), pointing into `params`
// (layout.total floats, host), to be stored as `dtype`. The export and the test probes use it.
std::vector<TensorToWrite> hf_tensors(const ParamLayout& layout, const float* params, DType dtype);

struct HfExportOptions {
  std::string dtype = "float32";            // float32, bfloat16 (round to nearest even) or float16
  int64_t max_shard_bytes = 5'000'000'000;  // larger models are split into shards with an index
};

// Writes config.json, generation_config.json and the weights of the whole model into `dir` (created
// if needed). `full_params` is the flat buffer of make_param_layout(c, 0, L+2), host memory.
// Files of an earlier export in `dir` (model*.safetensors, the index) are replaced.
void export_hf_checkpoint(const std::string& dir, const LlamaConfig& c, const float* full_params,
                          const HfExportOptions& options = {});

// Parses "float32" / "bfloat16" / "float16" (InputError naming `where` otherwise).
DType export_dtype(const std::string& name, const std::string& where);

}  // namespace fm::model::io
