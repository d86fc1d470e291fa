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
