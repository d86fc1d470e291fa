// Splitting the model's layers into pipeline stages, with the same cuts as DeepSpeed.
//
// The model is a list of L+2 layers: 0 = "EmbeddingLayer", 1..L = "LlamaDecoderLayer",
// L+1 = "HeadLayer" (these are the type names a "type:REGEX" method matches against).
// A partition is a vector `parts` of stages+1 bounds; stage s runs layers [parts[s], parts[s+1]).
//
// Methods (the whole method string is lower-cased first, as DeepSpeed's PipelineModule does):
//  - "uniform"     equal layer counts; the first (layers % stages) stages get one more layer.
//  - "parameters"  balanced over per-layer parameter counts (the default).
//  - "type:REGEX"  balanced over weights 1 for layers whose type name contains a match of REGEX
//                  (ECMAScript syntax, case-insensitive), 0 for the others. Only the text between
//                  the first and a second ':' is the pattern, as in DeepSpeed.
// "Balanced" is DeepSpeed's partition_balanced: among all contiguous cuts into non-empty parts, the
// one minimising (heaviest part - lightest part); ties go to the later cut.
//
// Bad requests (more stages than layers, unknown method, a pattern that is invalid or matches no
// layer) throw fm::InputError naming the key or flag the caller passes in PartitionKeys.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fm::pipeline {

inline constexpr std::string_view kEmbeddingLayerType = "EmbeddingLayer";
inline constexpr std::string_view kDecoderLayerType = "LlamaDecoderLayer";
inline constexpr std::string_view kHeadLayerType = "HeadLayer";

// Type names of the L+2 layers of a model with `num_decoder_layers` decoder layers.
std::vector<std::string> layer_type_names(int64_t num_decoder_layers);

// DeepSpeed's partition_uniform: when num_items <= num_parts, bound i is min(i, num_items).
std::vector<int> partition_uniform(int num_items, int num_parts);

// DeepSpeed's partition_balanced (falls back to partition_uniform when weights.size() <= num_parts).
std::vector<int> partition_balanced(const std::vector<double>& weights, int num_parts);

// Names used in error messages: the config key (or flag) of the method and of the stage count.
struct PartitionKeys {
  std::string method = "pipeline.partition_method";
  std::string stages = "pipeline.stages";
};

// Partitions the layers described by `layer_types` and `layer_params` (same length: one entry per
// layer) into `num_stages` stages, every stage getting at least one layer.
std::vector<int> partition_layers(std::string_view method, int num_stages,
                                  const std::vector<std::string>& layer_types,
                                  const std::vector<int64_t>& layer_params, const PartitionKeys& keys = {});

}  // namespace fm::pipeline
