#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <cstdint>

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
constexpr int kTileM = 256;
constexpr int kTileN = 256;

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
  const int tiles_m = (M + kTileM - 1) / kTileM;
  const int tiles_n = (N + kTileN - 1) / kTileN;
  for_each_task(int64_t{tiles_m} * tiles_n, [&](int64_t tile) {
    const int m0 = static_cast<int>(tile / tiles_n) * kTileM;
    const int n0 = static_cast<int>(tile % tiles_n) * kTileN;
    const int m = std::min(kTileM, M - m0);
    const int n = std::min(kTileN, N - n0);
    // Row m0 of op(A): row m0 of A, or column m0 of A when transposed; likewise for B's columns.
    const T* a = trans_a ? A + m0 : A + int64_t{m0} * lda;
    const T* b = trans_b ? B + int64_t{n0} * ldb : B + n0;
    gemm(trans_a, trans_b, m, n, K, alpha, a, lda, b, ldb, beta, C + int64_t{m0} * ldc + n0, ldc);
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
