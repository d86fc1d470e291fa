// Matrix products for the CPU backend: OpenBLAS for the arithmetic, oneTBB for the threads.
//
// Threading: OpenBLAS runs single-threaded (openblas_set_num_threads(1), applied once per process
// before the first product) and parallelism comes from TBB alone. gemm_parallel cuts the output
// into fixed tiles and runs one single-threaded BLAS call per tile as a TBB task; attention calls
// gemm() from inside its own per-head tasks. Why: Debian's OpenBLAS 0.3.21 (pthread build,
// openblas_get_parallel() == 1) keeps its own pool of spinning threads. Calling a multi-threaded
// sgemm from inside TBB tasks either oversubscribes the cores (TBB workers plus OpenBLAS workers)
// or queues callers on OpenBLAS's pool; measured on this machine (2 cores, M=2048 N=768 K=256) a
// whole-matrix sgemm with 2 OpenBLAS threads ran at 124 GF/s, the same call made from 2 TBB tasks
// at the same speed, and TBB tiles over single-threaded sgemm at 170-185 GF/s. One pool also
// composes with the rest of the step (no idle spinning pool between ops) and with several ranks
// per node (each rank's TBB arena sets its thread count; OPENBLAS_NUM_THREADS plays no part).
// The setting is process-wide: code outside fmengine that calls OpenBLAS in the same process gets
// single-threaded BLAS too.
//
// gemm_parallel cuts the output into tiles of 256 down to 128 rows/columns, enough for ~32 tasks,
// and splits K into chunks (summed in chunk order) when the output is too small for 8 tiles. The cut
// depends on (M, N, K) only, so each output element is computed by the same BLAS calls in the same
// order whatever the thread count.
#pragma once

namespace fm::kernels::cpu {

// Sets OpenBLAS to one thread; idempotent and cheap after the first call (every gemm calls it).
void ensure_single_threaded_blas();

// C(M,N) = alpha * op(A) @ op(B) + beta * C, row-major, one BLAS call on the calling thread.
// op(A) is (M,K): A is (M,K) with leading dimension lda, or (K,M) when trans_a. Likewise op(B) is
// (K,N): B is (K,N), or (N,K) when trans_b.
template <typename T>
void gemm(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda, const T* B,
          int ldb, T beta, T* C, int ldc);

// The same product with the output cut into tiles computed in parallel.
template <typename T>
void gemm_parallel(bool trans_a, bool trans_b, int M, int N, int K, T alpha, const T* A, int lda,
                   const T* B, int ldb, T beta, T* C, int ldc);

}  // namespace fm::kernels::cpu
