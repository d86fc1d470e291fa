// Elementwise kernels (elementwise.cu launches them): conversions, add and scale, the sum of
// squares, SwiGLU, RoPE, the embedding lookup and Adam.
//
// Every kernel is memory bound: 16-byte loads and stores (load8/store8) when every tensor is
// 16-byte aligned and the inner length is a multiple of 8, scalar accesses otherwise, and a
// grid-stride loop over a grid that depends on the size alone.
// Adam mirrors kernels/cpu/adam.cpp operation by operation with round-to-nearest intrinsics
// (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn, fmaf), which the compiler never contracts or
// reorders, so fp32 results are the CPU backend's bit for bit.
#pragma once

#include <charconv>
#include <cmath>

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

// Device code in an unnamed namespace: each file that includes it (the launcher, the CPU emulation
// test) gets its own copy.
namespace {

constexpr int kElementwiseThreads = 256;

// out[i] = op(a[i], b[i]) for i < n (b unused by one-input ops). Any of the refs may alias.
template <typename Op>
__global__ void map_kernel(Ref out, Ref a, Ref b, int64_t n, Op op, bool vec) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  int64_t scalar_from = 0;
  if (vec) {
    const int64_t chunks = n / 8;
    for (int64_t c = first; c < chunks; c += stride) {
      float x[8], y[8] = {}, z[8];
      load8(a, c * 8, x);
      if (b.p) load8(b, c * 8, y);
#pragma unroll
      for (int k = 0; k < 8; ++k) z[k] = op(x[k], y[k]);
      store8(out, c * 8, z);
    }
    scalar_from = chunks * 8;
  }
  for (int64_t i = scalar_from + first; i < n; i += stride) {
    const float x = load(a, i);
    const float y = b.p ? load(b, i) : 0.0f;
    store(out, i, op(x, y));
  }
}

struct CopyOp {
  __device__ float operator()(float x, float) const { return x; }
};
struct AddOp {
  __device__ float operator()(float x, float y) const { return x + y; }
};
struct ScaleOp {
  float factor;
  __device__ float operator()(float x, float) const { return x * factor; }
};

// ---- sum of squares ------------------------------------------------------------------------------
// Stage 1: a grid fixed by n; each thread sums x^2 in double over a fixed set of elements, blocks
// reduce in a fixed tree. Stage 2: one block sums the block partials in a fixed tree.
constexpr int kSumBlocksMax = 1024;
constexpr int kSumThreads = 256;

__global__ void sum_squares_partial(Ref x, int64_t n, double* partial, bool vec) {
  __shared__ double shared[32];
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  double acc = 0;
  int64_t scalar_from = 0;
  if (vec) {
    const int64_t chunks = n / 8;
    for (int64_t c = first; c < chunks; c += stride) {
      float v[8];
      load8(x, c * 8, v);
#pragma unroll
      for (int k = 0; k < 8; ++k) acc += double(v[k]) * double(v[k]);
    }
    scalar_from = chunks * 8;
  }
  for (int64_t i = scalar_from + first; i < n; i += stride) {
    const double v = load(x, i);
    acc += v * v;
  }
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

__global__ void sum_partials(const double* partial, int count, double* result) {
  __shared__ double shared[32];
  double acc = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) *result = total;
}

// ---- SwiGLU ----------------------------------------------------------------------------------------
__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Grid-stride loop over the (row, column chunk) items of an N x cols matrix; a chunk is `width`
// consecutive columns (8 on the vector path, 1 otherwise). Calls f(row, first column).
template <typename F>
__device__ __forceinline__ void for_row_chunks(int N, int cols, int width, F&& f) {
  const int64_t per_row = cols / width;
  const int64_t items = int64_t{N} * per_row;
  for (int64_t it = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; it < items;
       it += int64_t{gridDim.x} * blockDim.x)
    f(it / per_row, (it % per_row) * width);
}

__global__ void swiglu_forward_kernel(Ref out, Ref gateup, int N, int F, bool vec) {
  for_row_chunks(N, F, vec ? 8 : 1, [&](int64_t n, int64_t f) {
    const int64_t g_at = n * 2 * F + f, u_at = g_at + F, o_at = n * F + f;
    if (vec) {
      float g[8], u[8], y[8];
      load8(gateup, g_at, g);
      load8(gateup, u_at, u);
#pragma unroll
      for (int k = 0; k < 8; ++k) y[k] = g[k] * sigmoid(g[k]) * u[k];
      store8(out, o_at, y);
    } else {
      const float g = load(gateup, g_at), u = load(gateup, u_at);
      store(out, o_at, g * sigmoid(g) * u);
    }
  });
}

__device__ __forceinline__ void swiglu_grad(float g, float u, float dy, float& dg, float& du) {
  const float sg = sigmoid(g);
  dg = dy * u * sg * (1.0f + g * (1.0f - sg));
  du = dy * (g * sg);
}

__global__ void swiglu_backward_kernel(Ref dgateup, Ref dout, Ref gateup, int N, int F, bool vec) {
  for_row_chunks(N, F, vec ? 8 : 1, [&](int64_t n, int64_t f) {
    const int64_t g_at = n * 2 * F + f, u_at = g_at + F, o_at = n * F + f;
    if (vec) {
      float g[8], u[8], dy[8], dg[8], du[8];
      load8(gateup, g_at, g);
      load8(gateup, u_at, u);
      load8(dout, o_at, dy);
#pragma unroll
      for (int k = 0; k < 8; ++k) swiglu_grad(g[k], u[k], dy[k], dg[k], du[k]);
      store8(dgateup, g_at, dg);
      store8(dgateup, u_at, du);
    } else {
      float dg, du;
      swiglu_grad(load(gateup, g_at), load(gateup, u_at), load(dout, o_at), dg, du);
      store(dgateup, g_at, dg);
      store(dgateup, u_at, du);
    }
  });
}

// ---- RoPE --------------------------------------------------------------------------------------------
// One item per (token n, rotated head h, pair i < D/2); query heads then key heads are contiguous.
__global__ void rope_kernel(Ref qkv, Ref cos_sin, int N, int T, int heads, int D, int W, bool inverse) {
  const int half = D / 2;
  const int64_t items = int64_t{N} * heads * half;
  for (int64_t it = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; it < items;
       it += int64_t{gridDim.x} * blockDim.x) {
    const int i = static_cast<int>(it % half);
    const int64_t nh = it / half;
    const int h = static_cast<int>(nh % heads);
    const int64_t n = nh / heads;
    const int64_t row = (n % T) * D;
    const float c = load(cos_sin, row + i), s = load(cos_sin, row + half + i);
    const int64_t at1 = n * W + int64_t{h} * D + i, at2 = at1 + half;
    const float a = load(qkv, at1), b = load(qkv, at2);
    if (inverse) {
      store(qkv, at1, a * c + b * s);
      store(qkv, at2, b * c - a * s);
    } else {
      store(qkv, at1, a * c - b * s);
      store(qkv, at2, b * c + a * s);
    }
  }
}

// ---- embedding lookup ------------------------------------------------------------------------------
__global__ void embedding_forward_kernel(Ref out, const int32_t* tokens, Ref table, int N, int C, bool vec) {
  for_row_chunks(N, C, vec ? 8 : 1, [&](int64_t n, int64_t c) {
    const int64_t src = int64_t{tokens[n]} * C + c, dst = n * C + c;
    if (vec) {
      float v[8];
      load8(table, src, v);
      store8(out, dst, v);
    } else {
      store(out, dst, load(table, src));
    }
  });
}

// ---- Adam ----------------------------------------------------------------------------------------------
// Host side: the coefficients (kernels/adam_coefficients.h), the same as the CPU backend's.
inline AdamCoefficients adam_coefficients(const AdamStep& s) { return fm::kernels::adam_coefficients<float>(s); }

// kernels/cpu/adam.cpp, element by element:
//   p = master * decay_mul;  g = fma(master, decay_add, grad)
//   m' = fma(lerp_coeff, g - m, small_w1 ? m : g);  v' = fma(w2 * g, g, v * beta2)
//   master' = p + (neg_step * m') / (sqrt(v') / bc2_sqrt + eps)
__global__ void adam_kernel(float* master, Ref grad, float* m, float* v, Ref param_out, int64_t n,
                            AdamCoefficients c) {
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float mp = master[i];
    const float p = __fmul_rn(mp, c.decay_mul);
    const float g = fmaf(mp, c.decay_add, load(grad, i));
    const float mi = m[i];
    const float mn = fmaf(c.lerp_coeff, __fsub_rn(g, mi), c.small_w1 ? mi : g);
    const float vn = fmaf(__fmul_rn(c.w2, g), g, __fmul_rn(v[i], c.beta2));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vn), c.bc2_sqrt), c.eps);
    const float pn = __fadd_rn(p, __fdiv_rn(__fmul_rn(c.neg_step, mn), denom));
    m[i] = mn;
    v[i] = vn;
    master[i] = pn;
    if (param_out.p) store(param_out, i, pn);
  }
}

}  // namespace

}  // namespace fm::kernels::cuda
