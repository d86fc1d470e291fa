// The stage's forward and backward, read top to bottom like a tape. Shapes: N = B*T tokens,
// C hidden, F intermediate, V vocab, Q = H*D query width, QKV = (H+2Hkv)*D fused projection width.
//
// Gradient conventions (kernels/ops.h): parameter gradients accumulate (+=); activation gradients
// overwrite, except the residual stream, whose gradient `dres` (one (N,C) buffer per slot) is
// carried backwards through the layers and receives += from each branch.
#include "model/stage.h"

#include <algorithm>
#include <string>

#include "model/init.h"
#include "runtime/base/error.h"

namespace fm::model {

using kernels::f32;
using kernels::i32;

struct Stage::LayerWeights {
  float *ln1, *qkv, *o, *ln2, *gateup, *down;  // parameters
  const ParamInfo *pi_ln1, *pi_qkv, *pi_o, *pi_ln2, *pi_gateup, *pi_down;  // where their gradients go
};

// One micro-batch in flight.
struct Stage::Slot {
  int32_t* tokens = nullptr;  // (N) first stage
  std::vector<float*> res;    // n_dec+1 x (N,C): res[i] enters decoder layer i, res[n_dec] leaves the last
  struct Layer {
    float* rstd1;   // (N)
    float* qkv;     // (N,QKV) after RoPE
    float* att;     // (N,Q) attention output before o_proj
    float* lse;     // (B,H,T)
    float* mid;     // (N,C) residual after attention
    float* rstd2;   // (N)
    float* gateup;  // (N,2F)
  };
  std::vector<Layer> layers;
  float* rstd_f = nullptr;  // (N) final norm, last stage
  float* logits = nullptr;  // (N,V) logits, overwritten with dlogits by a training forward
  float* dres = nullptr;    // (N,C) gradient of the residual stream; the stage's input_grad
  enum class State { Empty, Trained, Evaluated } state = State::Empty;
};

namespace {

// Hands out aligned pieces of one allocation, or only counts bytes when base is null.
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* take(int64_t count) {
    size_t at = used_;
    used_ += (static_cast<size_t>(count) * sizeof(T) + 63) / 64 * 64;
    return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
  }
  int64_t bytes() const { return static_cast<int64_t>(used_); }

 private:
  char* base_;
  size_t used_ = 0;
};

struct Dims {
  int64_t B, T, N, C, F, V, H, Hkv, D, Q, QKV;
  Dims(const LlamaConfig& c, const StageShape& s)
      : B(s.micro_batch), T(s.seq_len), N(B * T), C(c.hidden_size), F(c.intermediate_size), V(c.vocab_size),
        H(c.num_attention_heads), Hkv(c.num_key_value_heads), D(c.head_dim), Q(c.q_dim()),
        QKV(c.q_dim() + 2 * c.kv_dim()) {}
};

int decoder_layers_in(const LlamaConfig& c, int begin, int end) {
  const int L = static_cast<int>(c.num_hidden_layers);
  int lo = std::max(begin, 1), hi = std::min(end, L + 1);
  return std::max(0, hi - lo);
}

bool holds_head(const LlamaConfig& c, int end) { return end == c.num_hidden_layers + 2; }

}  // namespace

// Lays out one slot in an allocation (or only counts its bytes when s is null).
struct StageSlotCarver {
  static void carve(Carver& cv, const Dims& d, int n_dec, bool first, bool last, Stage::Slot* s);
};

void StageSlotCarver::carve(Carver& cv, const Dims& d, int n_dec, bool first, bool last, Stage::Slot* s) {
  Stage::Slot dummy;
  Stage::Slot& x = s ? *s : dummy;
  if (first) x.tokens = cv.take<int32_t>(d.N);
  x.res.resize(n_dec + 1);
  for (auto& r : x.res) r = cv.take<float>(d.N * d.C);
  x.layers.resize(n_dec);
  for (auto& l : x.layers) {
    l.rstd1 = cv.take<float>(d.N);
    l.qkv = cv.take<float>(d.N * d.QKV);
    l.att = cv.take<float>(d.N * d.Q);
    l.lse = cv.take<float>(d.B * d.H * d.T);
    l.mid = cv.take<float>(d.N * d.C);
    l.rstd2 = cv.take<float>(d.N);
    l.gateup = cv.take<float>(d.N * 2 * d.F);
  }
  if (last) {
    x.rstd_f = cv.take<float>(d.N);
    x.logits = cv.take<float>(d.N * d.V);
  }
  x.dres = cv.take<float>(d.N * d.C);
}

namespace {

void carve_workspace(Carver& cv, const Dims& d, bool last, float** ln, float** dln, float** act, float** dgateup,
                     float** dqkv, float** datt, float** losses, int32_t** targets) {
  *ln = cv.take<float>(d.N * d.C);
  *dln = cv.take<float>(d.N * d.C);
  *act = cv.take<float>(d.N * d.F);
  *dgateup = cv.take<float>(d.N * 2 * d.F);
  *dqkv = cv.take<float>(d.N * d.QKV);
  *datt = cv.take<float>(d.N * d.Q);
  *losses = last ? cv.take<float>(d.N) : nullptr;
  *targets = last ? cv.take<int32_t>(d.N) : nullptr;
}
}  // namespace

MemoryPlan plan_stage_memory(const LlamaConfig& c, int layer_begin, int layer_end, const StageShape& shape) {
  const Dims d(c, shape);
  const bool first = layer_begin == 0, last = holds_head(c, layer_end);
  const int n_dec = decoder_layers_in(c, layer_begin, layer_end);
  MemoryPlan p;
  const int64_t total = make_param_layout(c, layer_begin, layer_end).total;
  p.param_bytes = std::max(total, shape.buffer_elements) * int64_t(sizeof(float));
  p.grad_bytes = shape.full_grads ? p.param_bytes : 0;
  Carver slot(nullptr);
  StageSlotCarver::carve(slot, d, n_dec, first, last, nullptr);
  p.activation_bytes_per_slot = slot.bytes();
  p.num_slots = shape.num_slots;
  Carver ws(nullptr);
  float* f;
  int32_t* t;
  carve_workspace(ws, d, last, &f, &f, &f, &f, &f, &f, &f, &t);
  ws.take<float>(d.T * d.D);  // the RoPE table
  p.workspace_bytes = ws.bytes();
  return p;
}

int64_t matmul_param_count(const LlamaConfig& c) {
  const int64_t C = c.hidden_size;
  const int64_t per_layer = C * (c.q_dim() + 2 * c.kv_dim()) + c.q_dim() * C + 3 * C * c.intermediate_size;
  return c.num_hidden_layers * per_layer + c.vocab_size * C;
}

double flops_per_token(const LlamaConfig& c, int seq_len) {
  return 6.0 * double(matmul_param_count(c)) +
         12.0 * double(c.num_hidden_layers) * double(c.q_dim()) * double(seq_len);
}

kernels::RopeScaling rope_scaling_of(const LlamaConfig& c) {
  kernels::RopeScaling s;
  if (c.rope_scaling.rope_type == "llama3") {
    s.llama3 = true;
    s.factor = c.rope_scaling.factor;
    s.low_freq_factor = c.rope_scaling.low_freq_factor;
    s.high_freq_factor = c.rope_scaling.high_freq_factor;
    s.original_max_position_embeddings = static_cast<int>(c.rope_scaling.original_max_position_embeddings);
  }
  return s;
}

// ---- construction ----------------------------------------------------------------------------------

Stage::Stage(const LlamaConfig& c, int layer_begin, int layer_end, kernels::Ops& ops, StageShape shape)
    : cfg_(c), layout_(make_param_layout(c, layer_begin, layer_end)), ops_(ops), shape_(shape) {
  FM_CHECK(shape.micro_batch > 0 && shape.seq_len > 0 && shape.num_slots > 0, "bad stage shape");
  const Dims d(c, shape);
  n_dec_ = decoder_layers_in(c, layer_begin, layer_end);
  FM_CHECK(d.N * std::max({d.C, d.V, d.QKV, 2 * d.F}) < (int64_t(1) << 31), "micro-batch too large for int sizes");
  N_ = int(d.N), C_ = int(d.C), F_ = int(d.F), V_ = int(d.V), Q_ = int(d.Q), QKV_ = int(d.QKV);
  eps_ = float(c.rms_norm_eps);
  attn_ = {int(d.B), int(d.T), int(d.H), int(d.Hkv), int(d.D)};
  plan_ = plan_stage_memory(c, layer_begin, layer_end, shape);

  FM_CHECK(shape.buffer_elements == 0 || shape.buffer_elements >= layout_.total, "buffer smaller than the layout");
  buffer_elements_ = std::max(layout_.total, shape.buffer_elements);
  params_ = static_cast<float*>(ops_.alloc(plan_.param_bytes));
  if (shape.full_grads) grads_ = static_cast<float*>(ops_.alloc(plan_.grad_bytes));

  auto tensor = [&](const std::string& name, float*& p, const ParamInfo*& info) {
    info = layout_.find(name);
    FM_CHECK(info, "layout lacks " + name);
    p = params_ + info->offset;
  };
  const int L = static_cast<int>(c.num_hidden_layers);
  if (is_first()) tensor("embed_tokens", embed_, pi_embed_);
  for (int layer = std::max(layer_begin, 1); layer < std::min(layer_end, L + 1); ++layer) {
    const std::string pre = "layers." + std::to_string(layer - 1) + ".";
    LayerWeights w{};
    tensor(pre + "input_layernorm", w.ln1, w.pi_ln1);
    tensor(pre + "qkv", w.qkv, w.pi_qkv);
    tensor(pre + "o_proj", w.o, w.pi_o);
    tensor(pre + "post_attention_layernorm", w.ln2, w.pi_ln2);
    tensor(pre + "gateup", w.gateup, w.pi_gateup);
    tensor(pre + "down_proj", w.down, w.pi_down);
    layers_.push_back(w);
  }
  if (is_last()) {
    tensor("norm", norm_, pi_norm_);
    // Tied: the head multiplies by the embedding table, ours or (on a head-only stage) a replica.
    tensor(c.tie_word_embeddings ? "embed_tokens" : "lm_head", lm_head_, pi_lm_head_);
  }

  activations_ = ops_.alloc(plan_.activation_bytes_per_slot * shape.num_slots);
  Carver acts(activations_);
  slots_.resize(shape.num_slots);
  for (auto& s : slots_) StageSlotCarver::carve(acts, d, n_dec_, is_first(), is_last(), &s);

  workspace_ = ops_.alloc(plan_.workspace_bytes);
  Carver ws(workspace_);
  carve_workspace(ws, d, is_last(), &ws_.ln, &ws_.dln, &ws_.act, &ws_.dgateup, &ws_.dqkv, &ws_.datt, &ws_.losses,
                  &ws_.targets);
  rope_ = ws.take<float>(d.T * d.D);
  std::vector<float> table(d.T * d.D);
  kernels::rope_table(table.data(), int(d.T), int(d.D), c.rope_theta, rope_scaling_of(c));
  ops_.copy(f32(rope_), f32(table.data()), d.T * d.D);
  FM_CHECK(ws.bytes() == plan_.workspace_bytes, "workspace plan mismatch");
}

Stage::~Stage() {
  ops_.release(workspace_);
  ops_.release(activations_);
  if (grads_) ops_.release(grads_);
  ops_.release(params_);
}

void Stage::zero_grads() {
  if (grads_) ops_.zero(f32(grads_), layout_.total);
}

void Stage::set_grad_sink(GradSink* sink) { sink_ = sink; }

template <typename Compute>
void Stage::param_grad(const ParamInfo& p, Compute&& compute) {
  if (!sink_) {
    FM_CHECK(grads_, "no gradient buffer and no gradient sink");
    compute(grads_ + p.offset, int64_t{0}, p.rows);
    return;
  }
  const int64_t step = std::max<int64_t>(1, sink_->chunk_rows(p));
  // Vectors (norm weights) come out of one fused kernel with the input gradient: never chunked.
  FM_CHECK(p.cols > 1 || step >= p.rows, "a gradient sink may not chunk a vector");
  for (int64_t r0 = 0; r0 < p.rows; r0 += step) {
    const int64_t r1 = std::min(p.rows, r0 + step);
    compute(sink_->acquire(p, r0, r1), r0, r1);
    sink_->release(p, r0, r1);
  }
}

void Stage::upload_params(const float* host) { ops_.copy(f32(params_), f32(host), layout_.total); }
void Stage::download_params(float* host) const {
  ops_.copy(f32(host), f32(params_), layout_.total);
  ops_.synchronize();
}
void Stage::download_grads(float* host) const {
  FM_CHECK(grads_, "the stage keeps no full gradient buffer");
  ops_.copy(f32(host), f32(grads_), layout_.total);
  ops_.synchronize();
}

void Stage::init_random(uint64_t seed) {
  std::vector<float> host(layout_.total);
  init_params(cfg_, layout_, seed, host.data());
  upload_params(host.data());
  ops_.synchronize();
}

const float* Stage::output(int slot) const {
  FM_CHECK(!is_last(), "the last stage has no hidden output");
  return slots_.at(slot).res.back();
}
const float* Stage::input_grad(int slot) const {
  FM_CHECK(!is_first(), "the first stage has no input gradient");
  return slots_.at(slot).dres;
}
const float* Stage::logits(int slot) const {
  FM_CHECK(is_last(), "only the last stage has logits");
  FM_CHECK(slots_.at(slot).state == Slot::State::Evaluated, "logits are kept by an eval forward only");
  return slots_.at(slot).logits;
}

void Stage::validate_tokens(const int32_t* ids, const char* what, bool allow_ignore) const {
  const int64_t N = int64_t(shape_.micro_batch) * shape_.seq_len;
  for (int64_t n = 0; n < N; ++n) {
    const int32_t t = ids[n];
    if ((t >= 0 && t < cfg_.vocab_size) || (allow_ignore && t == -100)) continue;
    throw InputError(std::string(what) + "[" + std::to_string(n) + "]",
                     "token id " + std::to_string(t) + " is outside the model's vocabulary [0, " +
                         std::to_string(cfg_.vocab_size) + ")",
                     "the data was tokenized with a vocabulary larger than the model's vocab_size");
  }
}

// ---- forward -----------------------------------------------------------------------------------------

double Stage::forward(int slot, const int32_t* tokens, const float* hidden_in, const int32_t* targets,
                      float grad_scale, bool training) {
  Slot& s = slots_.at(slot);
  const int64_t N = int64_t(shape_.micro_batch) * shape_.seq_len, C = cfg_.hidden_size;
  if (is_first()) {
    FM_CHECK(tokens, "the first stage needs tokens");
    validate_tokens(tokens, "tokens", false);
    ops_.copy(i32(s.tokens), i32(tokens), N);
    embedding_forward(s);
  } else {
    FM_CHECK(hidden_in, "a non-first stage needs hidden_in");
    ops_.copy(f32(s.res[0]), f32(hidden_in), N * C);
  }
  for (int i = 0; i < n_dec_; ++i) decoder_forward(i, s);
  double loss = 0;
  if (is_last()) {
    FM_CHECK(targets, "the last stage needs targets");
    validate_tokens(targets, "targets", true);
    ops_.copy(i32(ws_.targets), i32(targets), N);
    loss = head_forward(s, grad_scale, training);
  }
  s.state = training ? Slot::State::Trained : Slot::State::Evaluated;
  return loss;
}

// res[0](N,C) = embed[tokens]
void Stage::embedding_forward(Slot& s) {
  ops_.embedding_forward(f32(s.res[0]), i32(s.tokens), f32(embed_), N_, C_);
}

void Stage::decoder_forward(int i, Slot& s) {
  const int N = N_, C = C_, F = F_, Q = Q_, QKV = QKV_;
  const LayerWeights& w = layers_[i];
  Slot::Layer& a = s.layers[i];
  float* x = s.res[i];        // (N,C) residual entering the layer
  float* out = s.res[i + 1];  // (N,C) residual leaving it

  // attention block
  ops_.rmsnorm_forward(f32(ws_.ln), f32(a.rstd1), f32(x), f32(w.ln1), N, C, eps_);  // ln (N,C)
  ops_.matmul_nt(f32(a.qkv), f32(ws_.ln), f32(w.qkv), N, QKV, C, false);            // qkv (N,QKV)
  ops_.rope_forward(f32(a.qkv), f32(rope_), attn_);
  ops_.attention_forward(f32(a.att), f32(a.lse), f32(a.qkv), attn_);  // att (N,Q), lse (B,H,T)
  ops_.copy(f32(a.mid), f32(x), int64_t(N) * C);
  ops_.matmul_nt(f32(a.mid), f32(a.att), f32(w.o), N, C, Q, true);  // mid = x + att @ Wo^T

  // MLP block
  ops_.rmsnorm_forward(f32(ws_.ln), f32(a.rstd2), f32(a.mid), f32(w.ln2), N, C, eps_);
  ops_.matmul_nt(f32(a.gateup), f32(ws_.ln), f32(w.gateup), N, 2 * F, C, false);  // gateup (N,2F)
  ops_.swiglu_forward(f32(ws_.act), f32(a.gateup), N, F);                          // act (N,F)
  ops_.copy(f32(out), f32(a.mid), int64_t(N) * C);
  ops_.matmul_nt(f32(out), f32(ws_.act), f32(w.down), N, C, F, true);  // out = mid + act @ Wd^T
}

double Stage::head_forward(Slot& s, float grad_scale, bool training) {
  const int N = N_, C = C_, V = V_;
  ops_.rmsnorm_forward(f32(ws_.ln), f32(s.rstd_f), f32(s.res.back()), f32(norm_), N, C, eps_);
  ops_.matmul_nt(f32(s.logits), f32(ws_.ln), f32(lm_head_), N, V, C, false);  // logits (N,V)
  // training: dlogits = grad_scale * (softmax - onehot) replaces the logits in place.
  return ops_.cross_entropy(f32(ws_.losses), training ? f32(s.logits) : kernels::View{}, f32(s.logits),
                            i32(ws_.targets), N, V, grad_scale);
}

// ---- backward ----------------------------------------------------------------------------------------

void Stage::backward(int slot, const float* dhidden_out) {
  Slot& s = slots_.at(slot);
  FM_CHECK(s.state == Slot::State::Trained, "backward needs a training forward of the same slot");
  const int64_t N = int64_t(shape_.micro_batch) * shape_.seq_len, C = cfg_.hidden_size;
  if (is_last()) {
    head_backward(s);
  } else {
    FM_CHECK(dhidden_out, "a non-last stage needs dhidden_out");
    ops_.copy(f32(s.dres), f32(dhidden_out), N * C);
  }
  for (int i = n_dec_ - 1; i >= 0; --i) decoder_backward(i, s);
  if (is_first()) embedding_backward(s);
  s.state = Slot::State::Empty;
}

void Stage::head_backward(Slot& s) {
  const int N = N_, C = C_, V = V_;
  float* x = s.res.back();
  float* dlogits = s.logits;  // (N,V), written by the training forward
  ops_.rmsnorm_forward(f32(ws_.ln), f32(s.rstd_f), f32(x), f32(norm_), N, C, eps_);
  param_grad(*pi_lm_head_, [&](float* g, int64_t r0, int64_t r1) {  // dW (V,C) += dlogits^T @ ln
    ops_.matmul_tn_rows(f32(g), f32(dlogits), f32(ws_.ln), V, C, N, int(r0), int(r1), true);
  });
  ops_.matmul_nn(f32(ws_.dln), f32(dlogits), f32(lm_head_), N, C, V, false);  // dln (N,C) = dlogits @ W
  param_grad(*pi_norm_, [&](float* g, int64_t, int64_t) {
    ops_.rmsnorm_backward(f32(s.dres), f32(g), f32(ws_.dln), f32(x), f32(norm_), f32(s.rstd_f), N, C, false);
  });
}

void Stage::decoder_backward(int i, Slot& s) {
  const int N = N_, C = C_, F = F_, Q = Q_, QKV = QKV_;
  const LayerWeights& w = layers_[i];
  Slot::Layer& a = s.layers[i];
  float* x = s.res[i];
  float* dres = s.dres;  // (N,C) gradient of the layer's output; leaves as the gradient of its input

  // MLP block: out = mid + swiglu(rmsnorm(mid) @ Wgu^T) @ Wd^T
  // dW (rows, cols) += dy^T @ x, chunk by chunk when the gradient sink asks for it.
  auto weight_grad = [&](const ParamInfo& p, const float* dy, const float* xin, int rows, int cols) {
    param_grad(p, [&](float* g, int64_t r0, int64_t r1) {
      ops_.matmul_tn_rows(f32(g), f32(dy), f32(xin), rows, cols, N, int(r0), int(r1), true);
    });
  };
  ops_.swiglu_forward(f32(ws_.act), f32(a.gateup), N, F);                 // recompute act (N,F)
  weight_grad(*w.pi_down, dres, ws_.act, C, F);                            // dWd (C,F) += dres^T @ act
  ops_.matmul_nn(f32(ws_.act), f32(dres), f32(w.down), N, F, C, false);    // dact (N,F) = dres @ Wd
  ops_.swiglu_backward(f32(ws_.dgateup), f32(ws_.act), f32(a.gateup), N, F);  // dgateup (N,2F)
  ops_.rmsnorm_forward(f32(ws_.ln), f32(a.rstd2), f32(a.mid), f32(w.ln2), N, C, eps_);  // recompute ln2
  weight_grad(*w.pi_gateup, ws_.dgateup, ws_.ln, 2 * F, C);                           // dWgu (2F,C)
  ops_.matmul_nn(f32(ws_.dln), f32(ws_.dgateup), f32(w.gateup), N, C, 2 * F, false);   // dln2 (N,C)
  param_grad(*w.pi_ln2, [&](float* g, int64_t, int64_t) {  // dres += through the norm: now d(mid)
    ops_.rmsnorm_backward(f32(dres), f32(g), f32(ws_.dln), f32(a.mid), f32(w.ln2), f32(a.rstd2), N, C, true);
  });

  // attention block: mid = x + attention(rope(rmsnorm(x) @ Wqkv^T)) @ Wo^T
  weight_grad(*w.pi_o, dres, a.att, C, Q);                               // dWo (C,Q) += dres^T @ att
  ops_.matmul_nn(f32(ws_.datt), f32(dres), f32(w.o), N, Q, C, false);   // datt (N,Q) = dres @ Wo
  ops_.attention_backward(f32(ws_.dqkv), f32(ws_.datt), f32(a.qkv), f32(a.att), f32(a.lse), attn_);
  ops_.rope_backward(f32(ws_.dqkv), f32(rope_), attn_);                     // dqkv before RoPE
  ops_.rmsnorm_forward(f32(ws_.ln), f32(a.rstd1), f32(x), f32(w.ln1), N, C, eps_);  // recompute ln1
  weight_grad(*w.pi_qkv, ws_.dqkv, ws_.ln, QKV, C);                                 // dWqkv (QKV,C)
  ops_.matmul_nn(f32(ws_.dln), f32(ws_.dqkv), f32(w.qkv), N, C, QKV, false);  // dln1 (N,C)
  param_grad(*w.pi_ln1, [&](float* g, int64_t, int64_t) {  // dres += through the norm: now d(x)
    ops_.rmsnorm_backward(f32(dres), f32(g), f32(ws_.dln), f32(x), f32(w.ln1), f32(a.rstd1), N, C, true);
  });
}

void Stage::embedding_backward(Slot& s) {
  param_grad(*pi_embed_, [&](float* g, int64_t r0, int64_t r1) {
    ops_.embedding_backward_rows(f32(g), f32(s.dres), i32(s.tokens), N_, C_, int(r0), int(r1), V_);
  });
}

}  // namespace fm::model
