// The CPU kernels as templates over the element type, instantiated for float and double.
//
// CpuOps (cpu_ops.h) runs the float instances behind the Ops interface; the double instances exist so
// tests can check every backward pass against finite differences, and the float entry points
// against the same math done in double. Contracts (layouts, accumulate vs overwrite) are those of
// kernels/ops.h; shapes are repeated here as (rows, columns). All functions parallelise internally
// with TBB over blocks fixed by the shape, so results are bitwise reproducible run to run and do
// not depend on the number of threads.
#pragma once

#include <cstdint>

#include "kernels/ops.h"

namespace fm::kernels::cpu {

// ---- GEMM (gemm.h has the strided single-call form) ------------------------------------------
template <typename T>  // out(M,N) = a(M,K) @ b(N,K)^T [+ out]
void matmul_nt(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate);
template <typename T>  // out(M,N) = a(M,K) @ b(K,N) [+ out]
void matmul_nn(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate);
template <typename T>  // out(M,N) = a(K,M)^T @ b(K,N) [+ out]
void matmul_tn(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate);
template <typename T>  // rows [r0,r1) of matmul_tn: out(r1-r0,N) = a(K,M)[:, r0:r1]^T @ b(K,N) [+ out]
void matmul_tn_rows(T* out, const T* a, const T* b, int M, int N, int K, int r0, int r1, bool accumulate);

// ---- embedding ---------------------------------------------------------------------------------
template <typename T>  // out(N,C) = table[tokens[n]]
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int C);
// dtable(V,C) += dout rows by token. Parallel over channel blocks; within a block the rows are
// added in token order, so the sums never depend on scheduling.
template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int N, int C, int V);
// Rows [r0, r1) of dtable alone: dtable_rows(r1-r0, C) += the dout rows of tokens in the range.
template <typename T>
void embedding_backward_rows(T* dtable_rows, const T* dout, const int32_t* tokens, int N, int C, int r0, int r1,
                             int V);

// ---- RMSNorm -----------------------------------------------------------------------------------
template <typename T>  // out(N,C), rstd(N)
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int C, T eps);
template <typename T>  // dx(N,C) = or +=, dw(C) +=
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int C,
                      bool accumulate_dx);

// ---- RoPE over the query and key heads of qkv (N, (H+2Hkv)*D), in place ---------------------
// cos_sin is (T, D) as produced by rope_table (rows for positions 0..T-1).
template <typename T>
void rope_forward(T* qkv, const T* cos_sin, const AttentionShape& s);
template <typename T>
void rope_backward(T* dqkv, const T* cos_sin, const AttentionShape& s);

// ---- causal grouped-query attention over fused qkv ------------------------------------------
// Queries are processed in blocks of `block` rows (0: the default, kAttentionBlock). Forward tasks
// are (sequence, head, query block); backward tasks are (sequence, kv head, key range), so no two
// tasks write the same rows of dk or dv. `key_splits` ranges (0: chosen from the shape, more when
// B*Hkv is small) trade a dQ buffer for parallelism. Scratch per task: two block x T matrices.
inline constexpr int kAttentionBlock = 64;
template <typename T>  // out(N, H*D), lse(B,H,T)
void attention_forward(T* out, T* lse, const T* qkv, const AttentionShape& s, int block = 0);
template <typename T>  // dqkv(N, (H+2Hkv)*D) overwritten
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const AttentionShape& s, int block = 0, int key_splits = 0);

// ---- SwiGLU ------------------------------------------------------------------------------------
template <typename T>  // out(N,F) = silu(gateup[:, :F]) * gateup[:, F:]
void swiglu_forward(T* out, const T* gateup, int N, int F);
template <typename T>  // dgateup(N,2F) overwritten
void swiglu_backward(T* dgateup, const T* dout, const T* gateup, int N, int F);

// ---- fused softmax cross-entropy (losses may be null; dlogits may be null or alias logits) ----
template <typename T>
double cross_entropy(T* losses, T* dlogits, const T* logits, const int32_t* targets, int N, int V,
                     T grad_scale);

// ---- elementwise and reductions ----------------------------------------------------------------
template <typename T>
void add(T* out, const T* a, const T* b, int64_t n);
template <typename T>
void accumulate(T* acc, const T* x, int64_t n);
template <typename T>
void scale(T* x, T s, int64_t n);
template <typename T>  // sum of squares in double, blocks summed in block order
double sum_squares(const T* x, int64_t n);

// ---- optimizer ---------------------------------------------------------------------------------
// One torch.optim.AdamW (adam_w_mode) / Adam step, in the operation order of torch's single-tensor
// implementation; see adam.cpp. param_out (nullable) receives a copy of the updated master.
template <typename T>
void adam_update(T* master, const T* grad, T* m, T* v, T* param_out, int64_t n, const AdamStep& s);

}  // namespace fm::kernels::cpu
