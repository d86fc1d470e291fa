// Deterministic embedding backward: dtable[t] += sum of dout rows of the tokens equal to t, summed
// in token order, without atomics.
//
// The (token, position) pairs are sorted by token with CUB's radix sort, which is stable: positions
// of one token stay in increasing order. Every sorted index that starts a run of equal tokens owns
// that table row: its block walks the run in order, summing each column in fp32, and adds the sum to
// the row once. Runs whose token lies outside [row_begin, row_end) are skipped (the row-chunked
// form ZeRO-2 uses), so chunked and whole-table calls sum every row identically.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/device_math.cuh"

namespace fm::kernels::cuda {

namespace {

constexpr int kThreads = 128;

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

void launch_embedding_backward(cudaStream_t s, Ref dtable_rows, Ref dout, const int32_t* tokens, int N, int C,
                               int row_begin, int row_end, Scratch& scratch) {
  if (N <= 0 || C <= 0 || row_end <= row_begin) return;
  size_t sort_bytes = 0;
  check_cuda(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, tokens, static_cast<int32_t*>(nullptr),
                                             static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), N,
                                             0, 32, s),
             "embedding_backward: radix sort size");
  Carve carve;
  const size_t keys_at = carve.add(sizeof(int32_t) * size_t(N));
  const size_t iota_at = carve.add(sizeof(int32_t) * size_t(N));
  const size_t positions_at = carve.add(sizeof(int32_t) * size_t(N));
  const size_t temp_at = carve.add(sort_bytes);
  auto* base = static_cast<char*>(scratch.get(carve.total(), s));
  auto* keys = reinterpret_cast<int32_t*>(base + keys_at);
  auto* iota = reinterpret_cast<int32_t*>(base + iota_at);
  auto* positions = reinterpret_cast<int32_t*>(base + positions_at);

  iota_kernel<<<grid_for(N, 256, 1024), 256, 0, s>>>(iota, N);
  check_launch("embedding_backward: iota");
  check_cuda(cub::DeviceRadixSort::SortPairs(base + temp_at, sort_bytes, tokens, keys, iota, positions, N, 0, 32, s),
             "embedding_backward: radix sort");
  const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>((C + kThreads - 1) / kThreads));
  embedding_backward_kernel<<<grid, kThreads, 0, s>>>(dtable_rows, dout, keys, positions, N, C, row_begin, row_end);
  check_launch("embedding_backward");
}

}  // namespace fm::kernels::cuda
