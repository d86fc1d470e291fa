// The op set of the transformer, one interface for every backend.
//
// Contract (all backends):
//  - Row-major storage. Activations are (N,C) with N = B*T tokens; (B,T,C) means batch-major,
//    then time, then channel. Weights follow torch.nn.Linear: W is (out,in), y = x @ W^T.
//  - Parameter-gradient outputs ACCUMULATE (+=), so gradient accumulation over micro-batches and
//    tied weights need no extra pass. Activation-gradient outputs OVERWRITE unless an op says
//    `accumulate`, which the residual stream uses.
//  - Attention works on a fused projection qkv (N, (H + 2*Hkv) * D): per token, H query heads,
//    then Hkv key heads, then Hkv value heads, each D wide. Query head h reads key/value head
//    h / (H / Hkv) (grouped-query attention). The mask is causal within each sequence of T.
//  - The MLP works on a fused projection gateup (N, 2F): gate in columns [0,F), up in [F,2F).
//  - A View is a pointer into memory the backend owns, plus its element type. Shapes are passed
//    explicitly: the ops are called a few hundred times per step, never per element.
// The CPU backend computes in fp32 (kernels/cpu); the CUDA backend (kernels/cuda) in bf16 with fp32
// accumulation. Each op of one is tested against its twin in the other.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace fm::kernels {

enum class DType : uint8_t { F32, BF16, F16, I32 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

struct View {
  void* ptr = nullptr;
  DType dtype = DType::F32;

  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
  explicit operator bool() const { return ptr != nullptr; }
};

inline View f32(float* p) { return {p, DType::F32}; }
inline View f32(const float* p) { return {const_cast<float*>(p), DType::F32}; }
inline View i32(const int32_t* p) { return {const_cast<int32_t*>(p), DType::I32}; }

struct AttentionShape {
  int B = 0;    // sequences in the micro-batch
  int T = 0;    // tokens per sequence
  int H = 0;    // query heads
  int Hkv = 0;  // key/value heads (H % Hkv == 0)
  int D = 0;    // head dimension (even, for RoPE)
  int qkv_width() const { return (H + 2 * Hkv) * D; }
};

// One AdamW/Adam update over a contiguous range (the optimizer calls it per weight-decay group).
// Hyper-parameters are doubles, as torch receives them from Python: the coefficients formed from
// them (1 - beta1, lr / bias correction, ...) are rounded to the compute type only at the end.
struct AdamStep {
  double lr = 0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool adam_w_mode = true;  // true: decoupled decay (AdamW); false: L2 added to the gradient (Adam)
  int64_t step = 1;         // 1-based, for bias correction
};

class Ops {
 public:
  virtual ~Ops() = default;
  virtual const char* name() const = 0;

  // ---- memory -------------------------------------------------------------------------------
  virtual void* alloc(size_t bytes) = 0;  // aligned, zero-filled
  virtual void release(void* p) = 0;
  virtual void zero(View x, int64_t n) = 0;
  virtual void copy(View dst, View src, int64_t n) = 0;  // converts between float types
  virtual void synchronize() {}

  // ---- GEMM (fp32 accumulation) --------------------------------------------------------------
  // out(M,N) = a(M,K) @ b(N,K)^T [+ out]      Linear forward: x @ W^T
  virtual void matmul_nt(View out, View a, View b, int M, int N, int K, bool accumulate) = 0;
  // out(M,N) = a(M,K) @ b(K,N) [+ out]        input grad: dy @ W
  virtual void matmul_nn(View out, View a, View b, int M, int N, int K, bool accumulate) = 0;
  // out(M,N) = a(K,M)^T @ b(K,N) [+ out]      weight grad: dW += dy^T @ x
  virtual void matmul_tn(View out, View a, View b, int M, int N, int K, bool accumulate) = 0;

  // Rows [row_begin, row_end) of matmul_tn's result alone: out(R,N) (+)= a(K,M)[:, row_begin:row_end]^T
  // @ b(K,N), R = row_end - row_begin. A weight gradient computed in row chunks (ZeRO-2 streams
  // gradients through buckets smaller than a tensor). Backends override it; this fallback only
  // accepts the whole range.
  virtual void matmul_tn_rows(View out, View a, View b, int M, int N, int K, int row_begin, int row_end,
                              bool accumulate) {
    if (row_begin != 0 || row_end != M) unsupported("matmul_tn_rows over a partial range");
    matmul_tn(out, a, b, M, N, K, accumulate);
  }

  // ---- embedding -----------------------------------------------------------------------------
  // out(N,C) = table[tokens[n]]; tokens are I32 and already validated to lie in [0,V).
  virtual void embedding_forward(View out, View tokens, View table, int N, int C) = 0;
  // dtable(V,C) += scatter of dout(N,C) by token; deterministic (same sums in the same order).
  virtual void embedding_backward(View dtable, View dout, View tokens, int N, int C, int V) = 0;
  // Rows [row_begin, row_end) of the table alone: dtable_rows(row_end-row_begin, C) += the rows of
  // dout whose token lies in the range, in token order (deterministic). Fallback: whole range only.
  virtual void embedding_backward_rows(View dtable_rows, View dout, View tokens, int N, int C, int row_begin,
                                       int row_end, int V) {
    if (row_begin != 0 || row_end != V) unsupported("embedding_backward_rows over a partial range");
    embedding_backward(dtable_rows, dout, tokens, N, C, V);
  }

  // ---- RMSNorm: y = x / sqrt(mean(x^2) + eps) * w --------------------------------------------
  // out(N,C), rstd(N) saved for backward.
  virtual void rmsnorm_forward(View out, View rstd, View x, View w, int N, int C, float eps) = 0;
  // dx(N,C) (= or += when accumulate_dx), dw(C) +=.
  virtual void rmsnorm_backward(View dx, View dw, View dout, View x, View w, View rstd, int N, int C,
                                bool accumulate_dx) = 0;

  // ---- RoPE (rotate-half convention of Hugging Face LLaMA) -----------------------------------
  // cos_sin is (T, D) with cos in [0, D/2) and sin in [D/2, D) of each row, for positions 0..T-1.
  // Rotates the query and key heads of qkv in place; value heads are untouched.
  virtual void rope_forward(View qkv, View cos_sin, const AttentionShape& s) = 0;
  // The inverse rotation applied to the query and key gradients of dqkv, in place.
  virtual void rope_backward(View dqkv, View cos_sin, const AttentionShape& s) = 0;

  // ---- causal grouped-query attention ----------------------------------------------------------
  // out(N, H*D) = softmax(q k^T / sqrt(D) + causal) v per head; lse(B,H,T) = log-sum-exp of the
  // scaled scores, saved so backward can recompute probabilities without storing T x T.
  virtual void attention_forward(View out, View lse, View qkv, const AttentionShape& s) = 0;
  // dqkv(N, (H+2Hkv)D) is overwritten with the gradients of q, k and v.
  virtual void attention_backward(View dqkv, View dout, View qkv, View out, View lse,
                                  const AttentionShape& s) = 0;

  // ---- SwiGLU: out = silu(gate) * up ---------------------------------------------------------
  virtual void swiglu_forward(View out, View gateup, int N, int F) = 0;  // out(N,F), gateup(N,2F)
  virtual void swiglu_backward(View dgateup, View dout, View gateup, int N, int F) = 0;

  // ---- fused softmax cross-entropy -------------------------------------------------------------
  // For each row n with targets[n] != -100: losses[n] = logsumexp(logits[n]) - logits[n][t];
  // rows with -100 give 0. When dlogits is non-null it receives grad_scale * (softmax - onehot)
  // (zero rows for ignored targets); dlogits may alias logits. Returns sum of losses (double).
  virtual double cross_entropy(View losses, View dlogits, View logits, View targets, int N, int V,
                               float grad_scale) = 0;

  // ---- elementwise and reductions ------------------------------------------------------------
  virtual void add(View out, View a, View b, int64_t n) = 0;  // out = a + b (out may alias a or b)
  virtual void accumulate(View acc, View x, int64_t n) = 0;   // acc += x
  virtual void scale(View x, float s, int64_t n) = 0;         // x *= s
  virtual double sum_squares(View x, int64_t n) = 0;          // sum x^2 in double

  // ---- optimizer -----------------------------------------------------------------------------
  // master/m/v are fp32 (n); grad is fp32. When `param_out` is non-null, the updated master is also
  // written there (converted to its dtype): the bf16 working copy on GPUs.
  virtual void adam_update(View master, View grad, View m, View v, View param_out, int64_t n,
                           const AdamStep& s) = 0;

 protected:
  [[noreturn]] static void unsupported(const char* what) {
    std::fprintf(stderr, "internal error: this backend does not implement %s\n", what);
    std::abort();
  }
};

// RoPE table for positions 0..T-1 (see rope_forward): inv_freq[i] = theta^(-2i/D), optionally
// rescaled by llama3 rope scaling, angle = position * inv_freq. Computed on the host with the float32
// arithmetic of Hugging Face's LlamaRotaryEmbedding (float32 inv_freq and float32 angles, as there),
// so entries are within 1 ulp of the reference's (angles computed in double would differ from it by
// many ulps at late positions).
struct RopeScaling {
  bool llama3 = false;
  double factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int original_max_position_embeddings = 8192;
};
void rope_table(float* cos_sin, int T, int D, double theta, const RopeScaling& scaling);

}  // namespace fm::kernels
