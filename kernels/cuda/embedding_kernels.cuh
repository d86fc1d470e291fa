// Deterministic embedding backward kernels (embedding.cu sorts and launches): dtable[t] += sum of dout rows of the tokens equal to t, summed
// in token order, without atomics.
//
// The (token, position) pairs are sorted by token with CUB's radix sort, which is stable: positions
// of one token stay in increasing order. Every sorted index that starts a run of equal tokens owns
// that table row: its block walks the run in order, summing each column in fp32, and adds the sum to
// the row once. Runs whose token lies outside [row_begin, row_end) are skipped (the row-chunked
// form ZeRO-2 uses), so chunked and whole-table calls sum every row identically.
#pragma once

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

// Device code in an unnamed namespace: each file that includes it (the launcher, the CPU emulation
// test) gets its own copy.
namespace {

constexpr int kEmbeddingThreads = 128;

__global__ void iota_kernel(int32_t* out, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) out[i] = i;
}

// Block (i, column chunk): when sorted index i starts a run, sums the run's dout rows over the
// block's columns. Each thread owns one column of the chunk.
__global__ void embedding_backward_kernel(Ref dtable_rows, Ref dout, const int32_t* keys, const int32_t* positions,
                                          int N, int C, int row_begin, int row_end) {
  const int i = blockIdx.x;
  const int32_t t = keys[i];
  if ((i > 0 && keys[i - 1] == t) || t < row_begin || t >= row_end) return;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0;
  for (int j = i; j < N && keys[j] == t; ++j) acc += load(dout, int64_t{positions[j]} * C + c);
  const int64_t at = int64_t{t - row_begin} * C + c;
  store(dtable_rows, at, load(dtable_rows, at) + acc);
}

}  // namespace

}  // namespace fm::kernels::cuda
