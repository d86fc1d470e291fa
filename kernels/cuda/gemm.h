// Row-major matrix products of ops.h on cuBLASLt (column-major underneath).
//
// A row-major X (r x c, row stride ld) is the column-major X^T (c x r, leading dimension ld), so
// out = opA(a) opB(b) in row-major is out^T = opB(b)^T opA(a)^T in column-major: cuBLASLt's "A" is
// our b and its "B" is our a, with m = N, n = M. Leading dimensions are passed explicitly, which is
// how matmul_tn_rows reads a column range of a (K, M) matrix in place.
//
// Types: a and b F32 (compute fp32, or TF32 when allowed) or BF16/F16 (fp32 accumulation); out of
// the input type or F32. beta = 1 accumulates into out (the residual add of o_proj/down_proj and
// gradient accumulation are this epilogue). The heuristic's algorithm is cached per (shape, leading
// dimensions, types, pointer alignments); one workspace serves every call on the stream.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>

#include "kernels/ops.h"

namespace fm::kernels::cuda {

struct GemmCall {
  View out, a, b;
  bool a_transposed = false;  // a is stored (K, M): read as its transpose
  bool b_transposed = false;  // b is stored (N, K): read as its transpose
  int M = 0, N = 0, K = 0;
  int64_t lda = 0, ldb = 0, ldo = 0;  // row strides (elements) of a, b, out as stored
  bool accumulate = false;
};

// The calls of the ops.h forms (row strides of the stored matrices).
inline GemmCall nt_call(View out, View a, View b, int M, int N, int K, bool acc) {
  return {out, a, b, false, true, M, N, K, K, K, N, acc};  // a (M,K), b (N,K)
}
inline GemmCall nn_call(View out, View a, View b, int M, int N, int K, bool acc) {
  return {out, a, b, false, false, M, N, K, K, N, N, acc};  // a (M,K), b (K,N)
}
inline GemmCall tn_call(View out, View a, View b, int M, int N, int K, bool acc) {
  return {out, a, b, true, false, M, N, K, M, N, N, acc};  // a (K,M), b (K,N)
}
// Rows [r0, r1) of tn: columns r0.. of a, read in place with a's full row stride M.
inline GemmCall tn_rows_call(View out, View a, View b, int M, int N, int K, int r0, int r1, bool acc) {
  const View a_cols{static_cast<char*>(a.ptr) + size_t(r0) * dtype_size(a.dtype), a.dtype};
  return {out, a_cols, b, true, false, r1 - r0, N, K, M, N, N, acc};
}

// cuBLASLt's column-major view of a call: D (m x n, ldd) = op(A) op(B) [+ C], A = our b, B = our a.
// Each matrix as stored: rows, cols and leading dimension (column-major, element (i, j) at i + j*ld).
struct LtMatrix {
  int64_t rows, cols, ld;
};
struct LtLayout {
  bool trans_a, trans_b;
  LtMatrix a, b, d;
};
inline LtLayout lt_layout(const GemmCall& c) {
  LtLayout l{};
  // Our b, row-major (N, K) when transposed (column-major K x N, used transposed), else (K, N)
  // (column-major N x K): op(A) is N x K either way.
  l.trans_a = c.b_transposed;
  l.a = c.b_transposed ? LtMatrix{c.K, c.N, c.ldb} : LtMatrix{c.N, c.K, c.ldb};
  // Our a, row-major (K, M) when transposed (column-major M x K, used transposed), else (M, K)
  // (column-major K x M): op(B) is K x M either way.
  l.trans_b = c.a_transposed;
  l.b = c.a_transposed ? LtMatrix{c.M, c.K, c.lda} : LtMatrix{c.K, c.M, c.lda};
  l.d = LtMatrix{c.N, c.M, c.ldo};  // out^T
  return l;
}

class Gemm {
 public:
  Gemm(size_t workspace_bytes, bool allow_tf32);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  void run(const GemmCall& call, cudaStream_t stream);

 private:
  struct Plan;
  using Key = std::array<int64_t, 13>;
  const Plan& plan(const GemmCall& c, const Key& key);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  bool allow_tf32_ = false;
  std::map<Key, std::unique_ptr<Plan>> plans_;
};

}  // namespace fm::kernels::cuda
