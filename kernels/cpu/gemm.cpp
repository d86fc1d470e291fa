#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace fm::kernels::cpu {

void ensure_single_threaded_blas() {
  static const bool done = [] {
    openblas_set_num_threads(1);
    return true;
  }();
  (void)done;
}

namespace {

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K, double alpha, const double* A,
               int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// Below this many multiply-adds a product runs as one call: a task costs more than it saves.
constexpr int64_t kSerialWork = int64_t{1} << 18;
// Output tiles start at 256 x 256 (about 95% of OpenBLAS's single-thread speed here) and are halved,
// down to 128, until the product has kWantTasks tiles. A product whose output is still cut into
// fewer than kFewTasks tiles (a small output over a long K: the LM head's input gradient, the weight
// gradients of a small model) also splits K into chunks of at least kMinChunkK, computed as separate
// tasks and summed in chunk order.
constexpr int kTileStart = 256;
constexpr int kTileMin = 128;
constexpr int64_t kWantTasks = 32;
constexpr int64_t kFewTasks = 8;
constexpr int kMinChunkK = 1024;
constexpr int kMaxChunksK = 8;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How a product is cut; depends on (M, N, K) only, so results do not depend on the thread count.
struct Tiling {
  int tile_m = kTileStart, tile_n = kTileStart, tiles_m = 1, tiles_n = 1;
  int chunks_k = 1, chunk_k = 0;

  Tiling(int M, int N, int K) {
    auto count = [&] {
      tiles_m = static_cast<int>(ceil_div(M, tile_m));
      tiles_n = static_cast<int>(ceil_div(N, tile_n));
      return int64_t{tiles_m} * tiles_n;
    };
    while (count() < kWantTasks && (tile_m > kTileMin || tile_n > kTileMin)) {
      // Halve the tile side that the matrix spans most times over: tiles stay as square as it allows.
      const bool cut_m = tile_m > kTileMin && (tile_n <= kTileMin || ceil_div(M, tile_m) >= ceil_div(N, tile_n));
      (cut_m ? tile_m : tile_n) /= 2;
    }
    const int64_t tiles = count();
    chunk_k = K;
    if (tiles < kFewTasks && K >= 2 * kMinChunkK) {
      chunks_k = static_cast<int>(std::min<int64_t>({ceil_div(kWantTasks, tiles), K / kMinChunkK, kMaxChunksK}));
      chunk_k = static_cast<int>(ceil_div(K, chunks_k));
      chunks_k = static_cast<int>(ceil_div(K, chunk_k));
    }
  }
  int64_t tiles() const { return int64_t{tiles_m} * tiles_n; }
};

}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  ensure_single_threaded_blas();
  if (K <= 0) {  // BLAS would still scale C by beta; keep that meaning without relying on it
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C[int64_t{i} * ldc + j] = beta == T(0) ? T(0) : beta * C[int64_t{i} * ldc + j];
    return;
  }
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
            lda, B, ldb, beta, C, ldc);
}

template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
                   const T* B, int ldb, T beta, T* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (int64_t{M} * N * std::max(K, 1) <= kSerialWork) {
    gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  const Tiling tiling(M, N, K);
  // K chunk c > 0 writes alpha * op(A) op(B) over its K range into partial c (M x N, row-major),
  // chunk 0 writes into C with beta; partials are then added to C in chunk order.
  const int64_t partial_size = int64_t{M} * N;
  std::vector<T> partial_buffer(tiling.chunks_k > 1 ? static_cast<size_t>(partial_size) * (tiling.chunks_k - 1) : 0);
  T* partials = partial_buffer.data();
  for_each_task(tiling.tiles() * tiling.chunks_k, [&](int64_t task) {
    const int chunk = static_cast<int>(task / tiling.tiles());
    const int64_t tile = task % tiling.tiles();
    const int m0 = static_cast<int>(tile / tiling.tiles_n) * tiling.tile_m;
    const int n0 = static_cast<int>(tile % tiling.tiles_n) * tiling.tile_n;
    const int m = std::min(tiling.tile_m, M - m0);
    const int n = std::min(tiling.tile_n, N - n0);
    const int k0 = chunk * tiling.chunk_k;
    const int k = std::min(tiling.chunk_k, K - k0);
    // Row m0 of op(A) is row m0 of A, or column m0 when transposed; column k0 likewise. Same for B.
    const T* a = trans_a ? A + int64_t{k0} * lda + m0 : A + int64_t{m0} * lda + k0;
    const T* b = trans_b ? B + int64_t{n0} * ldb + k0 : B + int64_t{k0} * ldb + n0;
    if (chunk == 0)
      gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, C + int64_t{m0} * ldc + n0, ldc);
    else
      gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, T(0),
           partials + (chunk - 1) * partial_size + int64_t{m0} * N + n0, N);
  });
  if (tiling.chunks_k == 1) return;
  for_blocks(M, std::max<int64_t>(1, 16384 / N), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* c = C + i * ldc;
      for (int chunk = 1; chunk < tiling.chunks_k; ++chunk) {
        const T* p = partials + (chunk - 1) * partial_size + i * N;
#pragma omp simd
        for (int j = 0; j < N; ++j) c[j] += p[j];
      }
    }
  });
}

template void gemm<float>(bool, bool, int, int, int, float, const float*, int, const float*, int, float,
                          float*, int);
template void gemm<double>(bool, bool, int, int, int, double, const double*, int, const double*, int,
                           double, double*, int);
template void gemm_parallel<float>(bool, bool, int, int, int, float, const float*, int, const float*, int,
                                   float, float*, int);
template void gemm_parallel<double>(bool, bool, int, int, int, double, const double*, int, const double*,
                                    int, double, double*, int);

}  // namespace fm::kernels::cpu
