// Launcher of the embedding backward (embedding_kernels.cuh has the design): CUB's stable radix sort
// of the tokens, then one block per run of equal tokens.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/embedding_kernels.cuh"

namespace fm::kernels::cuda {

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
  const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>((C + kEmbeddingThreads - 1) / kEmbeddingThreads));
  embedding_backward_kernel<<<grid, kEmbeddingThreads, 0, s>>>(dtable_rows, dout, keys, positions, N, C, row_begin, row_end);
  check_launch("embedding_backward");
}

}  // namespace fm::kernels::cuda
