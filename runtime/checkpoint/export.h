// Whole-model views of a checkpoint: weights for another run (--init_ckpt), one consolidated
// safetensors file, and a Hugging Face model directory. fmckpt's commands are built on these.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/io/hf_checkpoint.h"
#include "model/llama_config.h"
#include "model/param_layout.h"
#include "runtime/checkpoint/reader.h"

namespace fm::checkpoint {

// The model config of the checkpoint `path` names (see resolve_checkpoint_dir), for a run that
// initialises from it without its own --model_config.
model::LlamaConfig checkpoint_model_config(const std::string& path, const std::string& where = "--init_ckpt");

// --init_ckpt with an fmengine checkpoint: fills host_params (layout.total floats, any stage of
// the run's model) with the checkpoint's weights, after verifying the checksums of the files it
// reads. The run's model must have the checkpoint's tensor shapes (InputError naming the manifest
// and the field otherwise). Optimizer state and steps are not used.
void load_weights(const std::string& path, const model::LlamaConfig& run_model,
                  const model::ParamLayout& layout, float* host_params,
                  const std::string& where = "--init_ckpt");

// The whole model's parameters in the flat layout of make_param_layout(model, 0, L+2).
std::vector<float> read_full_params(const CheckpointReader& reader);

// One safetensors file with every parameter under our tensor names (shape [rows, cols], or
// [rows] for vectors), fp32; with_optimizer adds "exp_avg/<name>" and "exp_avg_sq/<name>".
// __metadata__ holds the model's config.json and the training state of the manifest.
void consolidate(const CheckpointReader& reader, const std::string& out_file, bool with_optimizer);

struct HfExport {
  model::io::HfExportOptions options;
  std::string tokenizer;  // tokenizer.json or a directory of tokenizer files; "" = the one the run recorded
};
// A Hugging Face model directory (model/io's export) plus the tokenizer files, when known.
// Returns notes for the user (the tokenizer that was or was not copied).
std::vector<std::string> export_hf(const CheckpointReader& reader, const std::string& out_dir,
                                   const HfExport& how);

// "5GB" (10^9), "500MB", "2GiB" (2^30), "100KB", "12345" (bytes): HF's max_shard_size spellings.
int64_t parse_size(const std::string& text, const std::string& where);

}  // namespace fm::checkpoint
