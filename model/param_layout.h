// Where every parameter lives in a stage's flat buffer, and how it maps to Hugging Face tensors.
//
// The model is a list of L+2 layers: 0 = token embedding, 1..L = decoder layers, L+1 = head
// (final RMSNorm + LM head). A stage owns a contiguous range [layer_begin, layer_end) and keeps all
// its parameters (and, with the same layout, its gradients) in one flat fp32 buffer, in layer order.
// Per decoder layer the order is: input_layernorm (C), qkv ((H+2Hkv)*D, C) = [q_proj; k_proj; v_proj]
// stacked by rows, o_proj (C, H*D), post_attention_layernorm (C), gateup (2F, C) = [gate_proj; up_proj],
// down_proj (C, F). The head holds norm (C) and, unless embeddings are tied, lm_head (V, C).
//
// Tied embeddings: when the stage holds both layer 0 and layer L+1 the head reads the embedding's
// table (one tensor). When it holds layer L+1 but not layer 0, the head stage keeps its own replica,
// named like the embedding and marked tied_key = "embed"; the pipeline sums the replicas' gradients
// and they stay identical.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama_config.h"

namespace fm::model {

// Rows [row_begin, row_begin + rows) of one of our tensors come from the whole HF tensor `hf_name`.
struct HfSlice {
  std::string hf_name;
  int64_t row_begin = 0;
  int64_t rows = 0;
};

struct ParamInfo {
  std::string name;             // our name, e.g. "layers.3.qkv"; a tied replica has the owner's name
  int64_t rows = 0, cols = 1;   // vectors are (rows, 1)
  int64_t offset = 0;           // element offset in the stage's flat buffer
  int layer = 0;                // global layer index
  bool decay = true;            // AdamW weight decay applies (false for norm weights)
  std::string tied_key;         // "embed" for the embedding table and its replica, else ""
  bool replica = false;         // true for a tied replica (not the owner): counted once in norms
  std::vector<HfSlice> hf;      // the HF tensors it is made of, in row order
  int64_t numel() const { return rows * cols; }
};

struct ParamLayout {
  int layer_begin = 0, layer_end = 0;
  std::vector<ParamInfo> params;  // in buffer order
  int64_t total = 0;              // elements in the flat buffer
  // Index of the first param of each layer in `params`, for layers in [layer_begin, layer_end].
  std::vector<size_t> layer_first_param;
  const ParamInfo* find(const std::string& name) const;
};

ParamLayout make_param_layout(const LlamaConfig& c, int layer_begin, int layer_end);

// Parameters per global layer (embedding counted in layer 0; the head counts lm_head only when
// untied), as DeepSpeed's "parameters" partitioning weighs them.
std::vector<int64_t> layer_param_counts(const LlamaConfig& c);

}  // namespace fm::model
