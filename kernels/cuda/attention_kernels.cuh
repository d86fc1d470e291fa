// Causal grouped-query flash attention kernels, forward and backward, over the fused qkv layout
// (device code; attention.cu launches them).
//
// Tiles: a block works on kBlock consecutive tokens of one sequence and head (64 for bf16, 32 for
// fp32), split among kBlock/16 warps of 16 rows each. Q, K, V (and dO) tiles are staged in shared
// memory; scores never leave the chip and nothing of size T x T is stored.
// Products: every matrix product is a warp computing a 16-row slab from shared memory:
//   warp_abt:  C(16 x kBlock) = A(16 x K) B(kBlock x K)^T          scores and dP
//   WarpAcc:   acc(16 x D) += A(16 x kBlock) B(kBlock x D)          P V, P^T dO, dS^T Q, dS K
// For bf16 they run on tensor cores through WMMA (16x16x16, fp32 accumulators); for fp32 they are
// plain fp32 FMAs with the same tiling, so the fp32 build exercises the same orchestration and
// matches the CPU backend to ~1e-6 (this path is for parity, not speed).
// Softmax statistics are fp32 in log2 units (scores scaled by log2(e)/sqrt(D), exp2f); lse is saved
// in natural units as ops.h says.
//
// Forward: one block per (query tile, head, sequence), heavy (late) query tiles first. For each key
// tile up to the diagonal: S = Q K^T, online softmax (running max m and sum l per row, the running
// output rescaled by exp2(m_old - m_new)), O += P V with P rounded to the tile type.
//
// Backward (FlashAttention-2 algebra, recomputing P from q, k and lse), split in two kernels so that
// no two blocks ever write the same gradient element (no atomics, deterministic):
//   pre:   Dv = rowsum(dO * O) per (sequence, head, token)
//   dK/dV: one block per (key tile, kv head, sequence); loops over the query heads of the group and
//          the query tiles at and after the diagonal: S^T = K Q^T, P^T = exp(S^T - lse),
//          dP^T = V dO^T, dS^T = P^T (dP^T - Dv); dV += P^T dO, dK += dS^T Q (scaled at the end).
//          Grouped heads add into the same accumulators in head order.
//   dQ:    one block per (query tile, head, sequence); loops over key tiles up to the diagonal:
//          S, P, dP and dS as above, dQ += dS K (scaled at the end).
// P and dS are recomputed by both kernels (7 tile products per tile pair instead of 5): the price of
// determinism without a T x T or per-key-tile dQ buffer.
// Rows past T (a last partial tile) are zero in shared memory, masked out of dK/dV, never written.
#pragma once

#include <mma.h>

#include <cmath>
#include <string>
#include <type_traits>

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

// Device code in an unnamed namespace: each file that includes it (the launcher, the CPU emulation
// test) gets its own copy.
namespace {

using bf16 = __nv_bfloat16;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ constexpr size_t align128(size_t bytes) { return (bytes + 127) / 128 * 128; }
__host__ __device__ constexpr size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

template <typename T>
struct TileType;
template <>
struct TileType<bf16> {
  static constexpr int kBlock = 64;
  static constexpr int kPadTile = 8;   // WMMA needs row strides that are multiples of 8 elements
  static constexpr int kPadScore = 4;  // and multiples of 4 floats for fp32 stores
};
template <>
struct TileType<float> {
  static constexpr int kBlock = 32;
  static constexpr int kPadTile = 1;  // odd strides: lanes reading one column of 32 rows hit 32 banks
  static constexpr int kPadScore = 1;
};

template <typename T, int D>
struct Cfg {
  static constexpr bool kMma = std::is_same_v<T, bf16>;
  static constexpr int kBlock = TileType<T>::kBlock;
  static constexpr int kWarps = kBlock / 16;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kLdT = D + TileType<T>::kPadTile;          // a tile row, in T
  static constexpr int kLdS = kBlock + TileType<T>::kPadScore;    // a 16 x kBlock float score row
  static constexpr int kLdP = kMma ? kBlock + 8 : kLdS;           // a 16 x kBlock T probability row
  static constexpr int kLdO = D + 4;                              // a 16 x D float row
  static constexpr size_t kTileBytes = align128(size_t{kBlock} * kLdT * sizeof(T));
  static constexpr size_t kScoreBytes = align128(16 * kLdS * sizeof(float));
  // fp32 writes P (and dS) in place over the scores they come from; bf16 needs its own tiles.
  static constexpr size_t kProbBytes = kMma ? align128(16 * kLdP * sizeof(T)) : 0;
  static constexpr size_t kOutBytes = align128(16 * kLdO * sizeof(float));
  static constexpr size_t kRowStatBytes = align128(2 * kBlock * sizeof(float));

  // Forward, per warp: scores, reused for the P V product; probabilities.
  static constexpr size_t kFwdWarpBytes = max_size(kScoreBytes, kOutBytes) + kProbBytes;
  static constexpr size_t kFwdBytes = 3 * kTileBytes + kWarps * kFwdWarpBytes;
  // Backward, per warp: two score tiles (S and dP), reused to stage the final gradients; one (dQ)
  // or two (dK/dV) probability tiles.
  static constexpr size_t kBwdPair = max_size(2 * kScoreBytes, kOutBytes);
  static constexpr size_t kDqBytes = 4 * kTileBytes + kRowStatBytes + kWarps * (kBwdPair + kProbBytes);
  static constexpr size_t kDkvBytes = 4 * kTileBytes + kRowStatBytes + kWarps * (kBwdPair + 2 * kProbBytes);
};

struct Dims {
  int B, T, H, Hkv, group, W, HD;
  float scale, scale_log2;
};

template <typename T>
__device__ __forceinline__ float to_float(T x) {
  if constexpr (std::is_same_v<T, bf16>)
    return __bfloat162float(x);
  else
    return x;
}
template <typename T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, bf16>)
    return __ushort_as_bfloat16(float_to_bf16_bits(x));
  else
    return x;
}

// Rows [t0, t0 + kBlock) of a (T, ld) head slice `src` (already at the sequence's first row and the
// head's first column) into a tile with row stride kLdT; rows at or past T are zero.
template <typename T, int D>
__device__ void load_tile(T* tile, const T* src, int64_t ld, int t0, int T_len, bool vec) {
  using C = Cfg<T, D>;
  if (vec) {
    constexpr int kPerVec = 16 / sizeof(T);
    constexpr int kVecs = D / kPerVec;
    for (int e = threadIdx.x; e < C::kBlock * kVecs; e += C::kThreads) {
      const int r = e / kVecs, c = (e % kVecs) * kPerVec;
      uint4 data = make_uint4(0, 0, 0, 0);
      if (t0 + r < T_len) data = *reinterpret_cast<const uint4*>(src + int64_t(t0 + r) * ld + c);
      if constexpr (sizeof(T) == 2) {
        *reinterpret_cast<uint4*>(tile + r * C::kLdT + c) = data;
      } else {
        T* dst = tile + r * C::kLdT + c;
        dst[0] = __uint_as_float(data.x);
        dst[1] = __uint_as_float(data.y);
        dst[2] = __uint_as_float(data.z);
        dst[3] = __uint_as_float(data.w);
      }
    }
  } else {
    for (int e = threadIdx.x; e < C::kBlock * D; e += C::kThreads) {
      const int r = e / D, c = e % D;
      tile[r * C::kLdT + c] = t0 + r < T_len ? src[int64_t(t0 + r) * ld + c] : from_float<T>(0.0f);
    }
  }
}

// C(16 x N) = A(16 x K) B(N x K)^T, all in shared memory; C is fp32 with row stride ldc.
template <typename T, int N, int K>
__device__ __forceinline__ void warp_abt(float* Cm, int ldc, const T* A, int lda, const T* Bm, int ldb) {
  if constexpr (std::is_same_v<T, bf16>) {
    using namespace nvcuda;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[N / 16];
#pragma unroll
    for (int nf = 0; nf < N / 16; ++nf) wmma::fill_fragment(acc[nf], 0.0f);
#pragma unroll
    for (int ks = 0; ks < K / 16; ++ks) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
      wmma::load_matrix_sync(a, A + ks * 16, lda);
#pragma unroll
      for (int nf = 0; nf < N / 16; ++nf) {
        // B^T as a col-major K x N operand: element (k, n) at Bm[n * ldb + k].
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> b;
        wmma::load_matrix_sync(b, Bm + nf * 16 * ldb + ks * 16, ldb);
        wmma::mma_sync(acc[nf], a, b, acc[nf]);
      }
    }
#pragma unroll
    for (int nf = 0; nf < N / 16; ++nf) wmma::store_matrix_sync(Cm + nf * 16, acc[nf], ldc, wmma::mem_row_major);
  } else {
    // Lane owns columns lane, lane + 32, ... of all 16 rows.
    constexpr int kCols = N / 32;
    const int lane = threadIdx.x & 31;
    float acc[16][kCols];
#pragma unroll
    for (int r = 0; r < 16; ++r)
#pragma unroll
      for (int j = 0; j < kCols; ++j) acc[r][j] = 0.0f;
#pragma unroll 4
    for (int k = 0; k < K; ++k) {
      float b[kCols];
#pragma unroll
      for (int j = 0; j < kCols; ++j) b[j] = Bm[(lane + 32 * j) * ldb + k];
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const float a = A[r * lda + k];
#pragma unroll
        for (int j = 0; j < kCols; ++j) acc[r][j] = fmaf(a, b[j], acc[r][j]);
      }
    }
#pragma unroll
    for (int r = 0; r < 16; ++r)
#pragma unroll
      for (int j = 0; j < kCols; ++j) Cm[r * ldc + lane + 32 * j] = acc[r][j];
  }
}

// A 16 x D fp32 accumulator of one warp: acc += A(16 x K) B(K x D), A and B in shared memory.
template <typename T, int D, bool kMma = std::is_same_v<T, bf16>>
struct WarpAcc;

template <typename T, int D>
struct WarpAcc<T, D, true> {
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> f[D / 16];

  __device__ void zero() {
#pragma unroll
    for (int nf = 0; nf < D / 16; ++nf) nvcuda::wmma::fill_fragment(f[nf], 0.0f);
  }
  template <int K>
  __device__ void mma(const T* A, int lda, const T* Bm, int ldb) {
    using namespace nvcuda;
#pragma unroll
    for (int ks = 0; ks < K / 16; ++ks) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> a;
      wmma::load_matrix_sync(a, A + ks * 16, lda);
#pragma unroll
      for (int nf = 0; nf < D / 16; ++nf) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> b;
        wmma::load_matrix_sync(b, Bm + ks * 16 * ldb + nf * 16, ldb);
        wmma::mma_sync(f[nf], a, b, f[nf]);
      }
    }
  }
  __device__ void store(float* Cm, int ldc) const {
#pragma unroll
    for (int nf = 0; nf < D / 16; ++nf)
      nvcuda::wmma::store_matrix_sync(Cm + nf * 16, f[nf], ldc, nvcuda::wmma::mem_row_major);
  }
};

// fp32: lane (r = lane / 2, p = lane % 2) holds row r, columns p, p + 2, p + 4, ...
template <typename T, int D>
struct WarpAcc<T, D, false> {
  float v[D / 2];

  __device__ void zero() {
#pragma unroll
    for (int m = 0; m < D / 2; ++m) v[m] = 0.0f;
  }
  template <int K>
  __device__ void mma(const T* A, int lda, const T* Bm, int ldb) {
    const int lane = threadIdx.x & 31, r = lane >> 1, p = lane & 1;
#pragma unroll 2
    for (int k = 0; k < K; ++k) {
      const float a = A[r * lda + k];
      const T* brow = Bm + k * ldb + p;
#pragma unroll
      for (int m = 0; m < D / 2; ++m) v[m] = fmaf(a, brow[2 * m], v[m]);
    }
  }
  __device__ void store(float* Cm, int ldc) const {
    const int lane = threadIdx.x & 31, r = lane >> 1, p = lane & 1;
#pragma unroll
    for (int m = 0; m < D / 2; ++m) Cm[r * ldc + p + 2 * m] = v[m];
  }
};

// Writes rows [row0, row0 + 16) of a 16 x D fp32 staging tile (row stride kLdO) times `factor` to
// dst (row stride ld, at the head's first column of the sequence's first row); rows >= T skipped.
template <typename T, int D>
__device__ void write_rows(T* dst, int64_t ld, const float* stage, int row0, int T_len, float factor) {
  const int lane = threadIdx.x & 31;
  for (int rr = 0; rr < 16; ++rr) {
    const int t = row0 + rr;
    if (t >= T_len) break;
    for (int c = lane; c < D; c += 32)
      dst[int64_t(t) * ld + c] = from_float<T>(stage[rr * Cfg<T, D>::kLdO + c] * factor);
  }
}

// ---- forward -------------------------------------------------------------------------------------
template <typename T, int D>
__global__ void __launch_bounds__(Cfg<T, D>::kThreads)
    attention_forward_kernel(T* out, Ref lse, const T* qkv, Dims d, bool vec_in) {
  using C = Cfg<T, D>;
  unsigned char* smem = dynamic_smem();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, p = lane & 1;
  const int b = blockIdx.z, h = blockIdx.y;
  const int qt = gridDim.x - 1 - blockIdx.x;  // late query tiles see the most keys: start them first
  const int q0 = qt * C::kBlock;
  const int kvh = h / d.group;

  T* q_tile = reinterpret_cast<T*>(smem);
  T* k_tile = reinterpret_cast<T*>(smem + C::kTileBytes);
  T* v_tile = reinterpret_cast<T*>(smem + 2 * C::kTileBytes);
  unsigned char* mine = smem + 3 * C::kTileBytes + warp * C::kFwdWarpBytes;
  float* s_w = reinterpret_cast<float*>(mine);  // scores, then the P V product, then the output
  T* p_w = C::kMma ? reinterpret_cast<T*>(mine + max_size(C::kScoreBytes, C::kOutBytes)) : reinterpret_cast<T*>(mine);

  const T* seq = qkv + int64_t(b) * d.T * d.W;
  load_tile<T, D>(q_tile, seq + int64_t(h) * D, d.W, q0, d.T, vec_in);

  const int qi = q0 + warp * 16 + r;  // this lane pair's query
  float o[D / 2];
#pragma unroll
  for (int m = 0; m < D / 2; ++m) o[m] = 0.0f;
  float m_run = -INFINITY, l_run = 0.0f;

  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * C::kBlock;
    __syncthreads();  // the previous key tile is consumed by every warp
    load_tile<T, D>(k_tile, seq + int64_t(d.H + kvh) * D, d.W, k0, d.T, vec_in);
    load_tile<T, D>(v_tile, seq + int64_t(d.H + d.Hkv + kvh) * D, d.W, k0, d.T, vec_in);
    __syncthreads();

    warp_abt<T, C::kBlock, D>(s_w, C::kLdS, q_tile + warp * 16 * C::kLdT, C::kLdT, k_tile, C::kLdT);
    __syncwarp();
    // Online softmax over this tile; the lane pair (p = 0, 1) of row r splits its columns.
    const bool diagonal = kt == qt;
    float mx = -INFINITY;
#pragma unroll
    for (int m = 0; m < C::kBlock / 2; ++m) {
      const int c = p + 2 * m;
      float x = s_w[r * C::kLdS + c] * d.scale_log2;
      if (diagonal && k0 + c > qi) x = -INFINITY;
      mx = fmaxf(mx, x);
    }
    mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, 1));
    const float m_new = fmaxf(m_run, mx);  // finite: key k0 <= qi is always visible
    const float alpha = exp2f(m_run - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int m = 0; m < C::kBlock / 2; ++m) {
      const int c = p + 2 * m;
      float x = s_w[r * C::kLdS + c] * d.scale_log2;
      if (diagonal && k0 + c > qi) x = -INFINITY;
      const float pv = exp2f(x - m_new);
      sum += pv;
      p_w[r * C::kLdP + c] = from_float<T>(pv);
    }
    sum += __shfl_xor_sync(kFullMask, sum, 1);
    l_run = l_run * alpha + sum;
    m_run = m_new;
    __syncwarp();

    WarpAcc<T, D> pv;
    pv.zero();
    pv.template mma<C::kBlock>(p_w, C::kLdP, v_tile, C::kLdT);
    __syncwarp();  // every lane has read P before the product overwrites the scores
    pv.store(s_w, C::kLdO);
    __syncwarp();
#pragma unroll
    for (int m = 0; m < D / 2; ++m) o[m] = o[m] * alpha + s_w[r * C::kLdO + p + 2 * m];
  }

  const float inv_l = 1.0f / l_run;
  __syncwarp();
#pragma unroll
  for (int m = 0; m < D / 2; ++m) s_w[r * C::kLdO + p + 2 * m] = o[m] * inv_l;
  __syncwarp();
  write_rows<T, D>(out + int64_t(b) * d.T * d.HD + int64_t(h) * D, d.HD, s_w, q0 + warp * 16, d.T, 1.0f);
  if (p == 0 && qi < d.T) store(lse, (int64_t(b) * d.H + h) * d.T + qi, (m_run + log2f(l_run)) * kLn2);
}

// ---- backward ------------------------------------------------------------------------------------
// Dv[(b*H + h)*T + t] = sum_d dO * O, one warp per (token, head).
template <typename T>
__global__ void attention_dot_kernel(float* dv, const T* dout, const T* out, int N, int T_len, int H, int D) {
  const int64_t item = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (item >= int64_t(N) * H) return;
  const int64_t n = item / H;
  const int h = static_cast<int>(item % H);
  const int64_t at = n * int64_t(H) * D + int64_t(h) * D;
  float acc = 0.0f;
  for (int c = lane; c < D; c += 32) acc += to_float(dout[at + c]) * to_float(out[at + c]);
  acc = warp_sum(acc);
  if (lane == 0) {
    const int64_t b = n / T_len, t = n % T_len;
    dv[(b * H + h) * T_len + t] = acc;
  }
}

// lse (natural units) -> log2 units and Dv for rows [t0, t0 + kBlock); rows >= T get 0.
template <typename T, int D>
__device__ void load_row_stats(float* lse2, float* dvs, const Ref& lse, const float* dv, int64_t stat0, int t0,
                               int T_len) {
  for (int i = threadIdx.x; i < Cfg<T, D>::kBlock; i += Cfg<T, D>::kThreads) {
    const bool valid = t0 + i < T_len;
    lse2[i] = valid ? load(lse, stat0 + t0 + i) * kLog2e : 0.0f;
    dvs[i] = valid ? dv[stat0 + t0 + i] : 0.0f;
  }
}

template <typename T, int D>
__global__ void __launch_bounds__(Cfg<T, D>::kThreads)
    attention_dkdv_kernel(T* dqkv, const T* dout, const T* qkv, Ref lse, const float* dv_rows, Dims d, bool vec_in,
                          bool vec_dout) {
  using C = Cfg<T, D>;
  unsigned char* smem = dynamic_smem();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, p = lane & 1;
  const int b = blockIdx.z, g = blockIdx.y, kt = blockIdx.x;
  const int k0 = kt * C::kBlock;
  const int tiles = gridDim.x;

  T* k_tile = reinterpret_cast<T*>(smem);
  T* v_tile = reinterpret_cast<T*>(smem + C::kTileBytes);
  T* q_tile = reinterpret_cast<T*>(smem + 2 * C::kTileBytes);
  T* do_tile = reinterpret_cast<T*>(smem + 3 * C::kTileBytes);
  float* lse2 = reinterpret_cast<float*>(smem + 4 * C::kTileBytes);
  float* dvs = lse2 + C::kBlock;
  unsigned char* mine = smem + 4 * C::kTileBytes + C::kRowStatBytes + warp * (C::kBwdPair + 2 * C::kProbBytes);
  float* st_w = reinterpret_cast<float*>(mine);                     // S^T (16 keys x kBlock queries)
  float* dpt_w = reinterpret_cast<float*>(mine + C::kScoreBytes);   // dP^T
  T* pt_w = C::kMma ? reinterpret_cast<T*>(mine + C::kBwdPair) : reinterpret_cast<T*>(st_w);
  T* dst_w = C::kMma ? reinterpret_cast<T*>(mine + C::kBwdPair + C::kProbBytes) : reinterpret_cast<T*>(dpt_w);
  float* stage = reinterpret_cast<float*>(mine);  // after the loops: 16 x D gradient rows

  const T* seq = qkv + int64_t(b) * d.T * d.W;
  const T* dseq = dout + int64_t(b) * d.T * d.HD;
  load_tile<T, D>(k_tile, seq + int64_t(d.H + g) * D, d.W, k0, d.T, vec_in);
  load_tile<T, D>(v_tile, seq + int64_t(d.H + d.Hkv + g) * D, d.W, k0, d.T, vec_in);

  const int kj = k0 + warp * 16 + r;  // this lane pair's key
  WarpAcc<T, D> dk, dvacc;
  dk.zero();
  dvacc.zero();
  for (int h = g * d.group; h < (g + 1) * d.group; ++h) {
    const int64_t stat0 = (int64_t(b) * d.H + h) * d.T;
    for (int qt = kt; qt < tiles; ++qt) {
      const int q0 = qt * C::kBlock;
      __syncthreads();  // the previous query tile is consumed (and the K/V tiles are loaded)
      load_tile<T, D>(q_tile, seq + int64_t(h) * D, d.W, q0, d.T, vec_in);
      load_tile<T, D>(do_tile, dseq + int64_t(h) * D, d.HD, q0, d.T, vec_dout);
      load_row_stats<T, D>(lse2, dvs, lse, dv_rows, stat0, q0, d.T);
      __syncthreads();

      warp_abt<T, C::kBlock, D>(st_w, C::kLdS, k_tile + warp * 16 * C::kLdT, C::kLdT, q_tile, C::kLdT);
      warp_abt<T, C::kBlock, D>(dpt_w, C::kLdS, v_tile + warp * 16 * C::kLdT, C::kLdT, do_tile, C::kLdT);
      __syncwarp();
#pragma unroll 4
      for (int m = 0; m < C::kBlock / 2; ++m) {
        const int c = p + 2 * m;
        const int qi = q0 + c;
        const bool visible = qi < d.T && kj <= qi;
        const float s = st_w[r * C::kLdS + c], dpv = dpt_w[r * C::kLdS + c];
        const float pv = visible ? exp2f(fmaf(s, d.scale_log2, -lse2[c])) : 0.0f;
        const float ds = pv * (dpv - dvs[c]);
        pt_w[r * C::kLdP + c] = from_float<T>(pv);
        dst_w[r * C::kLdP + c] = from_float<T>(ds);
      }
      __syncwarp();
      dvacc.template mma<C::kBlock>(pt_w, C::kLdP, do_tile, C::kLdT);
      dk.template mma<C::kBlock>(dst_w, C::kLdP, q_tile, C::kLdT);
    }
  }
  __syncwarp();
  T* dseq_qkv = dqkv + int64_t(b) * d.T * d.W;
  dk.store(stage, C::kLdO);
  __syncwarp();
  write_rows<T, D>(dseq_qkv + int64_t(d.H + g) * D, d.W, stage, k0 + warp * 16, d.T, d.scale);
  __syncwarp();
  dvacc.store(stage, C::kLdO);
  __syncwarp();
  write_rows<T, D>(dseq_qkv + int64_t(d.H + d.Hkv + g) * D, d.W, stage, k0 + warp * 16, d.T, 1.0f);
}

template <typename T, int D>
__global__ void __launch_bounds__(Cfg<T, D>::kThreads)
    attention_dq_kernel(T* dqkv, const T* dout, const T* qkv, Ref lse, const float* dv_rows, Dims d, bool vec_in,
                        bool vec_dout) {
  using C = Cfg<T, D>;
  unsigned char* smem = dynamic_smem();
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = lane >> 1, p = lane & 1;
  const int b = blockIdx.z, h = blockIdx.y;
  const int qt = gridDim.x - 1 - blockIdx.x;
  const int q0 = qt * C::kBlock;
  const int kvh = h / d.group;

  T* q_tile = reinterpret_cast<T*>(smem);
  T* do_tile = reinterpret_cast<T*>(smem + C::kTileBytes);
  T* k_tile = reinterpret_cast<T*>(smem + 2 * C::kTileBytes);
  T* v_tile = reinterpret_cast<T*>(smem + 3 * C::kTileBytes);
  float* lse2 = reinterpret_cast<float*>(smem + 4 * C::kTileBytes);
  float* dvs = lse2 + C::kBlock;
  unsigned char* mine = smem + 4 * C::kTileBytes + C::kRowStatBytes + warp * (C::kBwdPair + C::kProbBytes);
  float* s_w = reinterpret_cast<float*>(mine);
  float* dp_w = reinterpret_cast<float*>(mine + C::kScoreBytes);
  T* ds_w = C::kMma ? reinterpret_cast<T*>(mine + C::kBwdPair) : reinterpret_cast<T*>(s_w);
  float* stage = reinterpret_cast<float*>(mine);

  const T* seq = qkv + int64_t(b) * d.T * d.W;
  const int64_t stat0 = (int64_t(b) * d.H + h) * d.T;
  load_tile<T, D>(q_tile, seq + int64_t(h) * D, d.W, q0, d.T, vec_in);
  load_tile<T, D>(do_tile, dout + int64_t(b) * d.T * d.HD + int64_t(h) * D, d.HD, q0, d.T, vec_dout);
  load_row_stats<T, D>(lse2, dvs, lse, dv_rows, stat0, q0, d.T);

  const int qrow = warp * 16 + r;  // this lane pair's query, within the tile
  const int qi = q0 + qrow;
  WarpAcc<T, D> dq;
  dq.zero();
  for (int kt = 0; kt <= qt; ++kt) {
    const int k0 = kt * C::kBlock;
    __syncthreads();  // the previous key tile is consumed (and the query tiles are loaded)
    load_tile<T, D>(k_tile, seq + int64_t(d.H + kvh) * D, d.W, k0, d.T, vec_in);
    load_tile<T, D>(v_tile, seq + int64_t(d.H + d.Hkv + kvh) * D, d.W, k0, d.T, vec_in);
    __syncthreads();

    warp_abt<T, C::kBlock, D>(s_w, C::kLdS, q_tile + warp * 16 * C::kLdT, C::kLdT, k_tile, C::kLdT);
    warp_abt<T, C::kBlock, D>(dp_w, C::kLdS, do_tile + warp * 16 * C::kLdT, C::kLdT, v_tile, C::kLdT);
    __syncwarp();
    const float l2 = lse2[qrow], dvr = dvs[qrow];
#pragma unroll 4
    for (int m = 0; m < C::kBlock / 2; ++m) {
      const int c = p + 2 * m;
      const float s = s_w[r * C::kLdS + c], dpv = dp_w[r * C::kLdS + c];
      const float pv = k0 + c <= qi ? exp2f(fmaf(s, d.scale_log2, -l2)) : 0.0f;
      ds_w[r * C::kLdP + c] = from_float<T>(pv * (dpv - dvr));
    }
    __syncwarp();
    dq.template mma<C::kBlock>(ds_w, C::kLdP, k_tile, C::kLdT);
  }
  __syncwarp();
  dq.store(stage, C::kLdO);
  __syncwarp();
  write_rows<T, D>(dqkv + int64_t(b) * d.T * d.W + int64_t(h) * D, d.W, stage, q0 + warp * 16, d.T, d.scale);
}

// ---- launch geometry (attention.cu and the CPU emulation test) ---------------------------------
// Forward and dQ: grid (tiles, H, B); dK/dV: grid (tiles, Hkv, B); Cfg::kThreads threads; shared
// memory Cfg::kFwdBytes / kDqBytes / kDkvBytes. rowsum(dO*O): one warp per (token, head), 256 threads.
template <typename T, int D>
unsigned attention_tiles(const AttentionShape& s) {
  return static_cast<unsigned>((s.T + Cfg<T, D>::kBlock - 1) / Cfg<T, D>::kBlock);
}

// 16-byte tile loads need the base and every row stride in bytes to be multiples of 16 (D % 16 == 0
// makes head offsets multiples of 16 elements).
template <typename T>
bool rows_aligned(const void* base, int64_t ld) {
  return reinterpret_cast<uintptr_t>(base) % 16 == 0 && (ld * int64_t(sizeof(T))) % 16 == 0;
}

inline Dims dims_of(const AttentionShape& s) {
  Dims d{};
  d.B = s.B, d.T = s.T, d.H = s.H, d.Hkv = s.Hkv, d.group = s.H / s.Hkv, d.W = s.qkv_width(), d.HD = s.H * s.D;
  d.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.D)));
  d.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(s.D)));
  return d;
}

}  // namespace

}  // namespace fm::kernels::cuda
