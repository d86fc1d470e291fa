// The row-major -> cuBLASLt column-major mapping of kernels/cuda/gemm.h, checked without a GPU: a
// plain column-major GEMM that reads the matrices exactly as cuBLASLt's documentation says it reads
// (op, rows, columns, leading dimension) must reproduce the CPU backend's matmul_nt/nn/tn/tn_rows.
#include <doctest/doctest.h>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cuda/gemm.h"
#include "tests/kernels/test_util.h"

using namespace fm::kernels;
using fm::kernels::cuda::GemmCall;
using fm::kernels::cuda::LtLayout;
using fm::kernels::cuda::LtMatrix;

namespace {

using FVec = std::vector<float>;

// Element (i, j) of op(X) for X stored column-major as described by m.
float op_at(const float* x, const LtMatrix& m, bool trans, int64_t i, int64_t j) {
  return trans ? x[j + i * m.ld] : x[i + j * m.ld];
}

// D = op(A) op(B) (+ D) the way cuBLASLt defines it, after checking the shapes agree.
void column_major_gemm(const GemmCall& c, const LtLayout& l) {
  const int64_t m = l.trans_a ? l.a.cols : l.a.rows, k = l.trans_a ? l.a.rows : l.a.cols;
  const int64_t kb = l.trans_b ? l.b.cols : l.b.rows, n = l.trans_b ? l.b.rows : l.b.cols;
  REQUIRE(k == kb);
  REQUIRE(l.d.rows == m);
  REQUIRE(l.d.cols == n);
  REQUIRE(l.a.ld >= l.a.rows);
  REQUIRE(l.b.ld >= l.b.rows);
  REQUIRE(l.d.ld >= l.d.rows);
  const auto* A = static_cast<const float*>(c.b.ptr);  // cuBLASLt's A is our b
  const auto* B = static_cast<const float*>(c.a.ptr);  // and its B our a
  auto* D = static_cast<float*>(c.out.ptr);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = c.accumulate ? D[i + j * l.d.ld] : 0.0;
      for (int64_t p = 0; p < k; ++p) acc += double(op_at(A, l.a, l.trans_a, i, p)) * op_at(B, l.b, l.trans_b, p, j);
      D[i + j * l.d.ld] = static_cast<float>(acc);
    }
}

}  // namespace

TEST_CASE("gemm layout: the cuBLASLt view of every ops.h form computes the row-major product") {
  auto cpu = make_cpu_ops(1);
  const int M = 13, N = 7, K = 5;
  const FVec a = testing::to_float(testing::random_vec(size_t(M) * K, 1));
  const FVec b = testing::to_float(testing::random_vec(size_t(N) * K, 2));
  const FVec init = testing::to_float(testing::random_vec(size_t(M) * N, 3));
  for (bool acc : {false, true}) {
    FVec want = init, got = init;
    cpu->matmul_nt(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, acc);
    GemmCall c = cuda::nt_call(f32(got.data()), f32(a.data()), f32(b.data()), M, N, K, acc);
    column_major_gemm(c, cuda::lt_layout(c));
    CHECK(testing::max_abs_diff(testing::to_double(got), testing::to_double(want)) < 1e-5);

    want = init, got = init;
    cpu->matmul_nn(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, acc);  // b read as (K, N)
    c = cuda::nn_call(f32(got.data()), f32(a.data()), f32(b.data()), M, N, K, acc);
    column_major_gemm(c, cuda::lt_layout(c));
    CHECK(testing::max_abs_diff(testing::to_double(got), testing::to_double(want)) < 1e-5);

    want = init, got = init;
    cpu->matmul_tn(f32(want.data()), f32(a.data()), f32(b.data()), M, N, K, acc);  // a read as (K, M)
    c = cuda::tn_call(f32(got.data()), f32(a.data()), f32(b.data()), M, N, K, acc);
    column_major_gemm(c, cuda::lt_layout(c));
    CHECK(testing::max_abs_diff(testing::to_double(got), testing::to_double(want)) < 1e-5);

    const int r0 = 3, r1 = 11;
    FVec want_rows(init.begin(), init.begin() + (r1 - r0) * N), got_rows = want_rows;
    cpu->matmul_tn_rows(f32(want_rows.data()), f32(a.data()), f32(b.data()), M, N, K, r0, r1, acc);
    c = cuda::tn_rows_call(f32(got_rows.data()), f32(a.data()), f32(b.data()), M, N, K, r0, r1, acc);
    column_major_gemm(c, cuda::lt_layout(c));
    CHECK(testing::max_abs_diff(testing::to_double(got_rows), testing::to_double(want_rows)) < 1e-5);
  }
}
