// Causal grouped-query attention over the fused qkv projection, with BLAS for the block products.
//
// Layout: row n = b*T + t of qkv holds H query heads, Hkv key heads, Hkv value heads, each D wide,
// so head j of token t is the D floats at qkv[n * W + j * D] (W = (H + 2 Hkv) * D). BLAS reads these
// strided rows directly (leading dimension W): nothing is copied or transposed.
//
// Forward, one task per (sequence, query head, block of Bq queries starting at q0), keys 0..end-1
// with end = q0 + Bq (the causal frontier of the block):
//   S = scale * Q K^T  (Bq x end), masked above the diagonal; P = exp(S - rowmax), l = rowsum(P)
//   O = (P V) / l,  lse = rowmax + log(l)
// Backward, one task per (sequence, kv head), looping over the query heads of the group and their
// query blocks; probabilities are recomputed from lse (flash-attention style):
//   P = exp(scale * Q K^T - lse), dP = dO V^T, Di = rowsum(dO * O), dS = P * (dP - Di)
//   dV += P^T dO,  dK += scale * dS^T Q,  dQ = scale * dS K
// Only this task writes the dK and dV rows of its kv head, and it adds the contributions in a fixed
// order (heads of the group, then query blocks), so results are bitwise reproducible. Scratch per
// task is two Bq x T matrices.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/row_kernels.h"
#include "kernels/cpu/vec_math.h"
#include "runtime/base/error.h"

namespace fm::kernels::cpu {

namespace {

// Where everything of one attention call sits: offsets (in elements) into the fused qkv (row width
// W), the output (row width H*D) and lse (B,H,T), plus the query blocking.
struct Layout {
  Layout(const AttentionShape& shape, int block)
      : s(shape),
        W(shape.qkv_width()),
        HD(shape.H * shape.D),
        group(shape.H / std::max(shape.Hkv, 1)),
        bq(block > 0 ? block : kAttentionBlock),
        nblocks((shape.T + bq - 1) / bq) {
    FM_CHECK(s.B > 0 && s.T > 0 && s.H > 0 && s.Hkv > 0 && s.D > 0, "attention: empty shape");
    FM_CHECK(s.H % s.Hkv == 0, "attention: H must be a multiple of Hkv");
  }
  int64_t row(int b, int t) const { return int64_t{b} * s.T + t; }
  int64_t q(int b, int t, int h) const { return row(b, t) * W + int64_t{h} * s.D; }
  int64_t k(int b, int t, int kvh) const { return row(b, t) * W + int64_t{s.H + kvh} * s.D; }
  int64_t v(int b, int t, int kvh) const { return row(b, t) * W + int64_t{s.H + s.Hkv + kvh} * s.D; }
  int64_t o(int b, int t, int h) const { return row(b, t) * HD + int64_t{h} * s.D; }
  int64_t lse(int b, int h, int t) const { return (int64_t{b} * s.H + h) * s.T + t; }

  const AttentionShape s;
  const int W, HD, group, bq, nblocks;
};

// Query rows [q0, q0 + rows) of block `index`; their keys are 0..end-1 (end = q0 + rows).
struct QueryBlock {
  QueryBlock(const Layout& L, int index)
      : q0(index * L.bq), rows(std::min(L.bq, L.s.T - q0)), end(q0 + rows) {}
  const int q0, rows, end;
};

}  // namespace

template <typename T>
void attention_forward(T* out, T* lse, const T* qkv, const AttentionShape& shape, int block) {
  const Layout L(shape, block);
  const AttentionShape& s = L.s;
  const T scale = T(1) / std::sqrt(T(s.D));
  for_each_task(int64_t{s.B} * s.H * L.nblocks, [&](int64_t task) {
    const int i = static_cast<int>(task % L.nblocks);
    const int h = static_cast<int>((task / L.nblocks) % s.H);
    const int b = static_cast<int>(task / (int64_t{L.nblocks} * s.H));
    const int kvh = h / L.group;
    const QueryBlock qb(L, i);
    const T* q = qkv + L.q(b, qb.q0, h);
    const T* k = qkv + L.k(b, 0, kvh);
    const T* v = qkv + L.v(b, 0, kvh);
    T* o = out + L.o(b, qb.q0, h);
    T* lse_row = lse + L.lse(b, h, qb.q0);

    T* S = thread_scratch<T, kScratchScores>(static_cast<size_t>(qb.rows) * qb.end);
    T* inv_sum = thread_scratch<T, kScratchRowScale>(static_cast<size_t>(qb.rows));
    gemm<T>(false, true, qb.rows, qb.end, s.D, scale, q, L.W, k, L.W, T(0), S, qb.end);
    for (int r = 0; r < qb.rows; ++r) {
      T* srow = S + int64_t{r} * qb.end;
      const int visible = qb.q0 + r + 1;
      const T mx = row_max(srow, visible);
      const T sum = row_exp_sum(srow, srow, visible, mx);
      std::fill(srow + visible, srow + qb.end, T(0));
      inv_sum[r] = T(1) / sum;
      lse_row[r] = mx + std::log(sum);
    }
    gemm<T>(false, false, qb.rows, s.D, qb.end, T(1), S, qb.end, v, L.W, T(0), o, L.HD);
    for (int r = 0; r < qb.rows; ++r) {
      T* orow = o + int64_t{r} * L.HD;
      const T f = inv_sum[r];
#pragma omp simd
      for (int d = 0; d < s.D; ++d) orow[d] *= f;
    }
  });
}

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const AttentionShape& shape, int block) {
  const Layout L(shape, block);
  const AttentionShape& s = L.s;
  const T scale = T(1) / std::sqrt(T(s.D));
  for_each_task(int64_t{s.B} * s.Hkv, [&](int64_t task) {
    const int kvh = static_cast<int>(task % s.Hkv);
    const int b = static_cast<int>(task / s.Hkv);
    const T* k = qkv + L.k(b, 0, kvh);
    const T* v = qkv + L.v(b, 0, kvh);
    T* dk = dqkv + L.k(b, 0, kvh);
    T* dv = dqkv + L.v(b, 0, kvh);
    for (int t = 0; t < s.T; ++t) {
      std::memset(dk + int64_t{t} * L.W, 0, sizeof(T) * s.D);
      std::memset(dv + int64_t{t} * L.W, 0, sizeof(T) * s.D);
    }
    T* P = thread_scratch<T, kScratchScores>(static_cast<size_t>(std::min(L.bq, s.T)) * s.T);
    T* dS = thread_scratch<T, kScratchScoreGrad>(static_cast<size_t>(std::min(L.bq, s.T)) * s.T);
    for (int h = kvh * L.group; h < (kvh + 1) * L.group; ++h) {
      for (int i = 0; i < L.nblocks; ++i) {
        const QueryBlock qb(L, i);
        const T* q = qkv + L.q(b, qb.q0, h);
        T* dq = dqkv + L.q(b, qb.q0, h);
        const T* o = out + L.o(b, qb.q0, h);
        const T* dO = dout + L.o(b, qb.q0, h);
        const T* lse_row = lse + L.lse(b, h, qb.q0);

        gemm<T>(false, true, qb.rows, qb.end, s.D, scale, q, L.W, k, L.W, T(0), P, qb.end);
        gemm<T>(false, true, qb.rows, qb.end, s.D, T(1), dO, L.HD, v, L.W, T(0), dS, qb.end);
        for (int r = 0; r < qb.rows; ++r) {
          T* prow = P + int64_t{r} * qb.end;
          T* dsrow = dS + int64_t{r} * qb.end;
          const T di = row_dot(dO + int64_t{r} * L.HD, o + int64_t{r} * L.HD, s.D);
          const int visible = qb.q0 + r + 1;
          const T l = lse_row[r];
#pragma omp simd
          for (int j = 0; j < visible; ++j) {
            const T p = exp_approx(prow[j] - l);
            prow[j] = p;
            dsrow[j] = p * (dsrow[j] - di);
          }
          std::fill(prow + visible, prow + qb.end, T(0));
          std::fill(dsrow + visible, dsrow + qb.end, T(0));
        }
        gemm<T>(true, false, qb.end, s.D, qb.rows, T(1), P, qb.end, dO, L.HD, T(1), dv, L.W);
        gemm<T>(true, false, qb.end, s.D, qb.rows, scale, dS, qb.end, q, L.W, T(1), dk, L.W);
        gemm<T>(false, false, qb.rows, s.D, qb.end, scale, dS, qb.end, k, L.W, T(0), dq, L.W);
      }
    }
  });
}

#define FM_INSTANTIATE(T)                                                                          \
  template void attention_forward<T>(T*, T*, const T*, const AttentionShape&, int);               \
  template void attention_backward<T>(T*, const T*, const T*, const T*, const T*,                  \
                                      const AttentionShape&, int);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
