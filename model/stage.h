// A pipeline stage: the layers [layer_begin, layer_end) of a LLaMA model with explicit forward and
// backward passes over an fm::kernels::Ops backend (no autograd).
//
// Global layers: 0 = token embedding, 1..L = decoder layers, L+1 = head (final RMSNorm, LM head,
// fused cross-entropy). One process training alone holds [0, L+2).
//
// Memory: parameters and gradients are two flat fp32 buffers in the layout of make_param_layout
// (param_layout.h), allocated with ops.alloc. Activations live in `num_slots` slots so a pipeline
// can keep several micro-batches in flight: forward(slot) saves what backward(slot) needs there.
// What a slot keeps, per decoder layer: the residual stream entering the layer and after attention,
// the RMSNorm reciprocal std devs, qkv after RoPE, the attention output and its log-sum-exp, and the
// gate/up projection. The normalised inputs and the SwiGLU output are recomputed in backward (they
// are one cheap elementwise pass each and cost 2C+F floats per token per layer to keep).
// The last stage keeps the logits (N,V) per slot; a training forward overwrites them with dlogits.
//
// Pointers: `tokens` and `targets` are host memory (validated here: a token outside [0,V) is an
// InputError). Everything else (hidden_in, dhidden_out, output, input_grad, logits, params, grads)
// is backend memory, as returned by ops.alloc.
//
// Loss: the engine passes grad_scale = 1 / (non-ignored targets in the whole global batch) to the
// last stage's forward, which returns the SUM of the per-token losses of this micro-batch (targets
// -100 are ignored) and keeps dlogits = grad_scale * (softmax - onehot) for backward. Parameter
// gradients accumulate (+=) over backward calls until zero_grads(): that is gradient accumulation.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/ops.h"
#include "model/grad_sink.h"
#include "model/llama_config.h"
#include "model/param_layout.h"

namespace fm::model {

struct StageShape {
  int micro_batch = 1;  // B: sequences per micro-batch
  int seq_len = 0;      // T: tokens per sequence
  int num_slots = 1;    // micro-batches whose activations can be held at once
  // Elements allocated for the flat parameter (and gradient) buffers: at least the layout's total;
  // ZeRO pads the buffer to a multiple of 2 x data-parallel size so it splits into equal
  // partitions. 0 = exactly the layout's total. The padding is zero and belongs to no tensor.
  int64_t buffer_elements = 0;
  // false: no full gradient buffer is allocated (grads() is null); a GradSink must be set before
  // backward. ZeRO stage 2 keeps only its partition of the gradients.
  bool full_grads = true;
};

// Bytes the stage allocates, computed from the config before anything is allocated.
struct MemoryPlan {
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t activation_bytes_per_slot = 0;
  int num_slots = 0;
  int64_t workspace_bytes = 0;  // shared by all slots (recomputed values, gradient scratch)
  int64_t total_bytes() const {
    return param_bytes + grad_bytes + activation_bytes_per_slot * num_slots + workspace_bytes;
  }
};

// The plan of Stage(c, layer_begin, layer_end, ops, shape) without building it.
MemoryPlan plan_stage_memory(const LlamaConfig& c, int layer_begin, int layer_end, const StageShape& shape);

// Training FLOPs per token (forward + backward) of the whole model, PaLM appendix B:
// 6 * N_matmul + 12 * L * (H*D) * T, N_matmul = every matmul weight including the LM head (tied or
// not), embedding lookups excluded. Attention is counted non-causal, as PaLM does.
double flops_per_token(const LlamaConfig& c, int seq_len);
// The matmul parameter count N used above.
int64_t matmul_param_count(const LlamaConfig& c);

// The RoPE scaling of the config in the kernels' terms.
kernels::RopeScaling rope_scaling_of(const LlamaConfig& c);

class Stage {
 public:
  Stage(const LlamaConfig& c, int layer_begin, int layer_end, kernels::Ops& ops, StageShape shape);
  ~Stage();
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  kernels::Ops& ops() const { return ops_; }
  const ParamLayout& layout() const { return layout_; }
  const StageShape& shape() const { return shape_; }
  int layer_begin() const { return layout_.layer_begin; }
  int layer_end() const { return layout_.layer_end; }
  bool is_first() const { return layout_.layer_begin == 0; }
  bool is_last() const { return layout_.layer_end == cfg_.num_hidden_layers + 2; }

  // Flat buffers (backend memory), layout().total floats each (buffer_elements() allocated).
  float* params() { return params_; }
  const float* params() const { return params_; }
  float* grads() { return grads_; }
  const float* grads() const { return grads_; }
  int64_t num_params() const { return layout_.total; }
  int64_t buffer_elements() const { return buffer_elements_; }
  void zero_grads();  // no-op without a full gradient buffer
  // Parameter gradients go to `sink` instead of grads() (nullptr: back to grads()). Not owned.
  void set_grad_sink(GradSink* sink);

  // Host <-> backend copies of the whole flat buffers (layout().total floats).
  void upload_params(const float* host);
  void download_params(float* host) const;
  void download_grads(float* host) const;
  // Random init (init.h) of this stage's parameters: the same values for a layer whatever the split.
  void init_random(uint64_t seed);

  // First stage: tokens (B*T int32 in [0,V), host); others: hidden_in (B,T,C) from the previous stage.
  // Last stage: targets (B*T int32, -100 = ignored, host) and grad_scale; returns the summed token
  // loss (0 on other stages). training=false is an eval forward: no backward may follow; on the
  // last stage the logits stay readable through logits(slot). Either overwrites the slot.
  double forward(int slot, const int32_t* tokens, const float* hidden_in, const int32_t* targets,
                 float grad_scale, bool training);
  // (B,T,C) hidden state leaving a non-last stage after forward(slot).
  const float* output(int slot) const;
  // dhidden_out: (B,T,C) gradient of output(slot) from the next stage; null on the last stage.
  // Accumulates parameter gradients into grads().
  void backward(int slot, const float* dhidden_out = nullptr);
  // (B,T,C) gradient of hidden_in after backward(slot) (non-first stages).
  const float* input_grad(int slot) const;
  // (B*T, V) logits of the last stage after an eval forward(slot).
  const float* logits(int slot) const;

  MemoryPlan memory_plan() const { return plan_; }

 private:
  struct LayerWeights;  // pointers into params_/grads_ of one decoder layer
  struct Slot;          // pointers into the activation buffer
  friend struct StageSlotCarver;
  void embedding_forward(Slot& s);
  void decoder_forward(int i, Slot& s);
  double head_forward(Slot& s, float grad_scale, bool training);
  void head_backward(Slot& s);
  void decoder_backward(int i, Slot& s);
  void embedding_backward(Slot& s);
  void validate_tokens(const int32_t* ids, const char* what, bool allow_ignore) const;
  // Accumulates the gradient of parameter `p`: compute(dst, r0, r1) adds the gradient of rows
  // [r0, r1) to dst ((r1-r0) x cols floats), once for the whole tensor, or chunk by chunk when the
  // sink asks for chunks.
  template <typename Compute>
  void param_grad(const ParamInfo& p, Compute&& compute);

  LlamaConfig cfg_;
  ParamLayout layout_;
  kernels::Ops& ops_;
  StageShape shape_;
  MemoryPlan plan_;
  int n_dec_ = 0;  // decoder layers held
  // Sizes the ops take as int: N = B*T tokens, Q = H*D, QKV = (H+2Hkv)*D.
  int N_ = 0, C_ = 0, F_ = 0, V_ = 0, Q_ = 0, QKV_ = 0;
  float eps_ = 0;
  kernels::AttentionShape attn_;

  float* params_ = nullptr;
  float* grads_ = nullptr;
  int64_t buffer_elements_ = 0;
  GradSink* sink_ = nullptr;
  void* activations_ = nullptr;
  void* workspace_ = nullptr;
  float* rope_ = nullptr;  // (T, D) cos | sin

  // Parameter tensors (nullptr where the stage does not hold them), and their gradients.
  float* embed_ = nullptr;
  float* norm_ = nullptr;
  float* lm_head_ = nullptr;  // = embedding table when tied in one stage
  const ParamInfo *pi_embed_ = nullptr, *pi_norm_ = nullptr, *pi_lm_head_ = nullptr;
  std::vector<LayerWeights> layers_;
  std::vector<Slot> slots_;

  struct Workspace {
    float* ln = nullptr;       // (N,C) normalised input, recomputed in backward
    float* dln = nullptr;      // (N,C)
    float* act = nullptr;      // (N,F) SwiGLU output, then its gradient
    float* dgateup = nullptr;  // (N,2F)
    float* dqkv = nullptr;     // (N,(H+2Hkv)D)
    float* datt = nullptr;     // (N,H*D)
    float* losses = nullptr;   // (N)
    int32_t* targets = nullptr;  // (N)
  } ws_;
};

}  // namespace fm::model
