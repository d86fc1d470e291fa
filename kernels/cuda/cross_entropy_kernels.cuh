// Fused softmax cross-entropy kernels (cross_entropy.cu launches them), one block per row, probabilities never stored.
//
// Pass 1 (online softmax): each thread keeps a running max m and sum s of exp(x - m) over its
// elements; the block merges the (m, s) pairs in a fixed tree. Thread 0 reads the target logit
// before pass 2 may overwrite it. Pass 2 writes dlogits = grad_scale * (exp(x - m) / s - onehot),
// in place when dlogits aliases logits (each element is read and then written by one thread).
// loss = m + log(s) - x[target] in double, per row into scratch; one block then sums the rows in
// a fixed order, so the returned total is deterministic. Rows with target -100 give loss 0 and a
// zero dlogits row. A target outside [0, V) is counted and reported to the caller.
#pragma once

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

// Device code in an unnamed namespace: each file that includes it (the launcher, the CPU emulation
// test) gets its own copy.
namespace {

constexpr int kCrossEntropyThreads = 512;
constexpr int32_t kIgnoreIndex = -100;

struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0f};
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ MaxSum block_merge(MaxSum x, MaxSum* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const MaxSum other{__shfl_xor_sync(kFullMask, x.m, o), __shfl_xor_sync(kFullMask, x.s, o)};
    x = merge(x, other);
  }
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  x = lane < warps ? shared[lane] : MaxSum{-INFINITY, 0.0f};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const MaxSum other{__shfl_xor_sync(kFullMask, x.m, o), __shfl_xor_sync(kFullMask, x.s, o)};
    x = merge(x, other);
  }
  return x;
}

template <int kW>
__global__ void __launch_bounds__(kCrossEntropyThreads)
    cross_entropy_kernel(Ref losses, Ref dlogits, Ref logits, const int32_t* targets, int V, float grad_scale,
                         double* row_loss, int* bad_targets) {
  __shared__ MaxSum shared[32];
  __shared__ float target_logit;
  const int64_t n = blockIdx.x;
  const int64_t base = n * V;
  const int32_t target = targets[n];
  const bool ignored = target == kIgnoreIndex;
  const bool bad = !ignored && (target < 0 || target >= V);
  if (ignored || bad) {
    if (dlogits.p)
      for (int c = threadIdx.x; c < V; c += blockDim.x) store(dlogits, base + c, 0.0f);
    if (threadIdx.x == 0) {
      row_loss[n] = 0.0;
      if (losses.p) store(losses, n, 0.0f);
      if (bad) atomicAdd(bad_targets, 1);  // an integer count: order does not matter
    }
    return;
  }
  if (threadIdx.x == 0) target_logit = load(logits, base + target);

  MaxSum acc{-INFINITY, 0.0f};
  for (int c = threadIdx.x * kW; c < V; c += blockDim.x * kW) {
    float v[8];
    load_chunk<kW>(logits, base + c, v);
    float mx = v[0];
#pragma unroll
    for (int k = 1; k < kW; ++k) mx = fmaxf(mx, v[k]);
    const float m = fmaxf(acc.m, mx);
    float s = acc.m == -INFINITY ? 0.0f : acc.s * expf(acc.m - m);
#pragma unroll
    for (int k = 0; k < kW; ++k) s += expf(v[k] - m);
    acc = {m, s};
  }
  const MaxSum row = block_merge(acc, shared);  // ends after a __syncthreads: target_logit is visible

  if (dlogits.p) {
    const float f = grad_scale / row.s;
    for (int c = threadIdx.x * kW; c < V; c += blockDim.x * kW) {
      float v[8];
      load_chunk<kW>(logits, base + c, v);
#pragma unroll
      for (int k = 0; k < kW; ++k) {
        v[k] = expf(v[k] - row.m) * f;
        if (c + k == target) v[k] -= grad_scale;
      }
      store_chunk<kW>(dlogits, base + c, v);
    }
  }
  if (threadIdx.x == 0) {
    const double loss = double(row.m) + log(double(row.s)) - double(target_logit);
    row_loss[n] = loss;
    if (losses.p) store(losses, n, static_cast<float>(loss));
  }
}

__global__ void sum_rows_kernel(const double* row_loss, int N, const int* bad_targets, CrossEntropyResult* result) {
  __shared__ double shared[32];
  double acc = 0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) acc += row_loss[i];
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) {
    result->loss_sum = total;
    result->bad_targets = *bad_targets;
  }
}

}  // namespace

}  // namespace fm::kernels::cuda
