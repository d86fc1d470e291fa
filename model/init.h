// Random initial parameters, as transformers' LlamaPreTrainedModel._init_weights draws them:
// normal(0, initializer_range) for linear and embedding weights, ones for RMSNorm weights.
//
// Every value is a pure function of (seed, parameter name, element index): a counter-based
// generator, no sequential state. So a stage holding layers 3..5 gets exactly the values the whole
// model has for those layers, whatever the split, and a tied replica (which carries its owner's
// name) equals its owner. The values are not torch's: parity with transformers goes through HF
// import, not through the seed.
#pragma once

#include <cstdint>

#include "model/llama_config.h"
#include "model/param_layout.h"

namespace fm::model {

// Fills `host_params` (layout.total floats, host memory) for every parameter of `layout`.
void init_params(const LlamaConfig& c, const ParamLayout& layout, uint64_t seed, float* host_params);

}  // namespace fm::model
