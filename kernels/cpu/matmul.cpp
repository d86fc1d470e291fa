// Linear-layer products over gemm_parallel (see gemm.h for the threading and tiling).
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemm.h"

namespace fm::kernels::cpu {

template <typename T>
void matmul_nt(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate) {
  gemm_parallel<T>(false, true, M, N, K, T(1), a, K, b, K, accumulate ? T(1) : T(0), out, N);
}

template <typename T>
void matmul_nn(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate) {
  gemm_parallel<T>(false, false, M, N, K, T(1), a, K, b, N, accumulate ? T(1) : T(0), out, N);
}

template <typename T>
void matmul_tn(T* out, const T* a, const T* b, int M, int N, int K, bool accumulate) {
  gemm_parallel<T>(true, false, M, N, K, T(1), a, M, b, N, accumulate ? T(1) : T(0), out, N);
}

// Rows [r0, r1) of matmul_tn: the columns r0..r1 of a (K,M) are read with its full row stride M.
template <typename T>
void matmul_tn_rows(T* out, const T* a, const T* b, int M, int N, int K, int r0, int r1, bool accumulate) {
  gemm_parallel<T>(true, false, r1 - r0, N, K, T(1), a + r0, M, b, N, accumulate ? T(1) : T(0), out, N);
}

#define FM_INSTANTIATE(T)                                                        \
  template void matmul_nt<T>(T*, const T*, const T*, int, int, int, bool);       \
  template void matmul_nn<T>(T*, const T*, const T*, int, int, int, bool);       \
  template void matmul_tn<T>(T*, const T*, const T*, int, int, int, bool);       \
  template void matmul_tn_rows<T>(T*, const T*, const T*, int, int, int, int, int, bool);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fm::kernels::cpu
