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
// Backward, one task per (sequence, kv head, key range), looping over the query heads of the group
// and the query blocks that see the range; probabilities are recomputed from lse (flash-attention
// style). For query block i and the keys R of the range it sees:
//   P = exp(scale * Q_i K_R^T - lse), dP = dO_i V_R^T, Di = rowsum(dO_i * O_i), dS = P * (dP - Di)
//   dV_R += P^T dO_i,  dK_R += scale * dS^T Q_i,  dQ_i (+)= scale * dS K_R
// A task owns the dK and dV rows of its key range and adds to them in a fixed order (heads, then
// query blocks). The key ranges exist for parallelism when B * Hkv tasks are too few for a wide
// machine: each range's share of dQ goes to its own buffer (range 0 writes dQ itself), and the
// shares are added in range order afterwards. The number of ranges and their bounds depend on the
// shape only, so results are bitwise reproducible whatever the thread count. Scratch per task is
// two Bq x T matrices.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

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

namespace {

// Enough backward tasks to keep a wide machine busy; beyond B*Hkv of them keys are split in ranges.
constexpr int64_t kWantBackwardTasks = 32;
constexpr int kMaxKeyRanges = 4;
// The dQ shares of ranges 1.. are buffered: bounded to this many elements (ranges are dropped first).
constexpr int64_t kMaxShareElements = int64_t{1} << 25;

// Key ranges as bounds on key blocks: range r covers blocks [bounds[r], bounds[r+1]). A key block j is
// seen by the query blocks j..nblocks-1, so bounds split that causal work evenly.
std::vector<int> key_ranges(const Layout& L, int requested) {
  const AttentionShape& s = L.s;
  int ranges = requested;
  if (ranges <= 0) {
    const int64_t tasks = int64_t{s.B} * s.Hkv;
    ranges = tasks >= kWantBackwardTasks ? 1 : static_cast<int>((kWantBackwardTasks + tasks - 1) / tasks);
    ranges = std::min(ranges, kMaxKeyRanges);
    const int64_t share = int64_t{s.B} * s.T * L.HD;
    while (ranges > 1 && (ranges - 1) * share > kMaxShareElements) --ranges;
  }
  ranges = std::clamp(ranges, 1, L.nblocks);
  // Cut where the running work is nearest to each multiple of total / ranges (scaled by ranges).
  std::vector<int> bounds = {0};
  const int64_t total = int64_t{L.nblocks} * (L.nblocks + 1) / 2;
  int64_t before = 0;
  for (int j = 0; j < L.nblocks && int(bounds.size()) < ranges; ++j) {
    const int64_t after = before + (L.nblocks - j);
    const int64_t target = total * int64_t(bounds.size());
    if (after * ranges >= target) {
      const int cut = target - before * ranges <= after * ranges - target ? j : j + 1;
      if (cut > bounds.back() && cut < L.nblocks) bounds.push_back(cut);
    }
    before = after;
  }
  bounds.push_back(L.nblocks);
  return bounds;
}

}  // namespace

template <typename T>
void attention_backward(T* dqkv, const T* dout, const T* qkv, const T* out, const T* lse,
                        const AttentionShape& shape, int block, int key_splits) {
  const Layout L(shape, block);
  const AttentionShape& s = L.s;
  const T scale = T(1) / std::sqrt(T(s.D));
  const std::vector<int> bounds = key_ranges(L, key_splits);
  const int ranges = static_cast<int>(bounds.size()) - 1;
  // dQ shares of ranges 1.., laid out like the attention output (B*T, H*D) per range.
  const int64_t share = int64_t{s.B} * s.T * L.HD;
  T* shares = ranges > 1 ? thread_scratch<T, kScratchPartials>(static_cast<size_t>(share) * (ranges - 1)) : nullptr;

  for_each_task(int64_t{s.B} * s.Hkv * ranges, [&](int64_t task) {
    const int range = static_cast<int>(task % ranges);
    const int kvh = static_cast<int>((task / ranges) % s.Hkv);
    const int b = static_cast<int>(task / (int64_t{ranges} * s.Hkv));
    const int k_lo = bounds[range] * L.bq;
    const int k_hi = std::min(bounds[range + 1] * L.bq, s.T);
    const T* k = qkv + L.k(b, k_lo, kvh);
    const T* v = qkv + L.v(b, k_lo, kvh);
    T* dk = dqkv + L.k(b, k_lo, kvh);
    T* dv = dqkv + L.v(b, k_lo, kvh);
    for (int t = 0; t < k_hi - k_lo; ++t) {
      std::memset(dk + int64_t{t} * L.W, 0, sizeof(T) * s.D);
      std::memset(dv + int64_t{t} * L.W, 0, sizeof(T) * s.D);
    }
    T* P = thread_scratch<T, kScratchScores>(static_cast<size_t>(std::min(L.bq, s.T)) * s.T);
    T* dS = thread_scratch<T, kScratchScoreGrad>(static_cast<size_t>(std::min(L.bq, s.T)) * s.T);
    for (int h = kvh * L.group; h < (kvh + 1) * L.group; ++h) {
      for (int i = bounds[range]; i < L.nblocks; ++i) {
        const QueryBlock qb(L, i);
        const int width = std::min(k_hi, qb.end) - k_lo;  // keys of the range this block sees
        const T* q = qkv + L.q(b, qb.q0, h);
        const T* o = out + L.o(b, qb.q0, h);
        const T* dO = dout + L.o(b, qb.q0, h);
        const T* lse_row = lse + L.lse(b, h, qb.q0);
        T* dq = range == 0 ? dqkv + L.q(b, qb.q0, h) : shares + (range - 1) * share + L.o(b, qb.q0, h);
        const int ldq = range == 0 ? L.W : L.HD;

        gemm<T>(false, true, qb.rows, width, s.D, scale, q, L.W, k, L.W, T(0), P, width);
        gemm<T>(false, true, qb.rows, width, s.D, T(1), dO, L.HD, v, L.W, T(0), dS, width);
        for (int r = 0; r < qb.rows; ++r) {
          T* prow = P + int64_t{r} * width;
          T* dsrow = dS + int64_t{r} * width;
          const T di = row_dot(dO + int64_t{r} * L.HD, o + int64_t{r} * L.HD, s.D);
          const int visible = std::clamp(qb.q0 + r + 1 - k_lo, 0, width);
          const T l = lse_row[r];
#pragma omp simd
          for (int j = 0; j < visible; ++j) {
            const T p = exp_approx(prow[j] - l);
            prow[j] = p;
            dsrow[j] = p * (dsrow[j] - di);
          }
          std::fill(prow + visible, prow + width, T(0));
          std::fill(dsrow + visible, dsrow + width, T(0));
        }
        gemm<T>(true, false, width, s.D, qb.rows, T(1), P, width, dO, L.HD, T(1), dv, L.W);
        gemm<T>(true, false, width, s.D, qb.rows, scale, dS, width, q, L.W, T(1), dk, L.W);
        gemm<T>(false, false, qb.rows, s.D, width, scale, dS, width, k, L.W, T(0), dq, ldq);
      }
    }
  });
  if (ranges == 1) return;
  // dQ += shares of ranges 1.., in range order; a share holds values only for the query blocks that
  // see its range.
  for_blocks(int64_t{s.B} * s.T, std::max<int64_t>(1, 16384 / L.HD), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int block_of_row = static_cast<int>(n % s.T) / L.bq;
      for (int range = 1; range < ranges && bounds[range] <= block_of_row; ++range) {
        const T* src = shares + (range - 1) * share + n * L.HD;
        T* dst = dqkv + n * L.W;
#pragma omp simd
        for (int c = 0; c < L.HD; ++c) dst[c] += src[c];
      }
    }
  });
}

#define FM_INSTANTIATE(T)                                                                          \
  template void attention_forward<T>(T*, T*, const T*, const AttentionShape&, int);               \
  template void attention_backward<T>(T*, const T*, const T*, const T*, const T*,                  \
                                      const AttentionShape&, int, int);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
