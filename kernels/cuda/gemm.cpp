#include "kernels/cuda/gemm.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include "kernels/cuda/launch.h"
#include "runtime/base/error.h"

namespace fm::kernels::cuda {

namespace {

void check_blas(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  throw RuntimeFault(fmt::format("cuBLASLt: {}: {} ({})", what, cublasGetStatusString(st), static_cast<int>(st)));
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F32: return CUDA_R_32F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F16: return CUDA_R_16F;
    case DType::I32: break;
  }
  FM_CHECK(false, "CudaOps matmul: i32 operands");
  return CUDA_R_32F;
}

// Largest power of two (at most 256) dividing the address: cuBLASLt picks kernels by alignment.
int64_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int64_t al = 256;
  while (al > 1 && a % static_cast<uintptr_t>(al) != 0) al /= 2;
  return al;
}

}  // namespace

struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A (= our b), B (= our a), C = D
  cublasLtMatmulAlgo_t algo{};

  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

Gemm::Gemm(size_t workspace_bytes, bool allow_tf32) : workspace_bytes_(workspace_bytes), allow_tf32_(allow_tf32) {
  check_blas(cublasLtCreate(&handle_), "cublasLtCreate");
  if (workspace_bytes_ > 0) check_cuda(cudaMalloc(&workspace_, workspace_bytes_), "cudaMalloc (GEMM workspace)");
}

Gemm::~Gemm() {
  plans_.clear();
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

const Gemm::Plan& Gemm::plan(const GemmCall& c, const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;

  auto p = std::make_unique<Plan>();
  const cudaDataType_t in_type = cuda_type(c.a.dtype), out_type = cuda_type(c.out.dtype);
  const bool fp32_in = c.a.dtype == DType::F32;
  const cublasComputeType_t compute = fp32_in && allow_tf32_ ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  check_blas(cublasLtMatmulDescCreate(&p->desc, compute, CUDA_R_32F), "matmul descriptor");
  const LtLayout l = lt_layout(c);
  const cublasOperation_t op_a = l.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = l.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)), "TRANSA");
  check_blas(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)), "TRANSB");
  check_blas(cublasLtMatrixLayoutCreate(&p->a, in_type, uint64_t(l.a.rows), uint64_t(l.a.cols), l.a.ld), "layout A");
  check_blas(cublasLtMatrixLayoutCreate(&p->b, in_type, uint64_t(l.b.rows), uint64_t(l.b.cols), l.b.ld), "layout B");
  check_blas(cublasLtMatrixLayoutCreate(&p->c, out_type, uint64_t(l.d.rows), uint64_t(l.d.cols), l.d.ld), "layout C");

  cublasLtMatmulPreference_t pref = nullptr;
  check_blas(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint64_t ws = workspace_bytes_;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  const uint32_t align_a = static_cast<uint32_t>(key[10]), align_b = static_cast<uint32_t>(key[9]),
                 align_c = static_cast<uint32_t>(key[11]);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a, sizeof(align_a));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(handle_, p->desc, p->a, p->b, p->c, p->c, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw RuntimeFault(fmt::format("cuBLASLt: no algorithm for out({},{}) = {}a @ {}b, K={}, types {} -> {} ({})",
                                   c.M, c.N, c.a_transposed ? "T" : "", c.b_transposed ? "T" : "", c.K,
                                   dtype_name(c.a.dtype), dtype_name(c.out.dtype), cublasGetStatusString(st)));
  p->algo = result.algo;
  return *plans_.emplace(key, std::move(p)).first->second;
}

void Gemm::run(const GemmCall& c, cudaStream_t stream) {
  FM_CHECK(c.a.dtype == c.b.dtype, std::string("CudaOps matmul: a and b differ in type (") + dtype_name(c.a.dtype) +
                                       ", " + dtype_name(c.b.dtype) + ")");
  FM_CHECK(c.out.dtype == c.a.dtype || c.out.dtype == DType::F32,
           std::string("CudaOps matmul: out must be f32 or the inputs' type, got ") + dtype_name(c.out.dtype));
  if (c.M <= 0 || c.N <= 0) return;
  if (c.K <= 0) {  // an empty sum: out = 0, or unchanged when accumulating
    if (c.accumulate) return;
    const size_t row_bytes = size_t(c.N) * dtype_size(c.out.dtype);
    check_cuda(cudaMemset2DAsync(c.out.ptr, size_t(c.ldo) * dtype_size(c.out.dtype), 0, row_bytes, size_t(c.M), stream),
               "matmul: zero output");
    return;
  }
  // Alignments are capped at 16 bytes: beyond that no kernel choice changes, and the cache stays small.
  auto cap = [](int64_t a) { return a > 16 ? int64_t{16} : a; };
  const Key key = {c.a_transposed, c.b_transposed, c.M, c.N, c.K, c.lda, c.ldb, c.ldo,
                   static_cast<int64_t>(c.a.dtype) * 16 + static_cast<int64_t>(c.out.dtype),
                   cap(alignment(c.a.ptr)), cap(alignment(c.b.ptr)), cap(alignment(c.out.ptr)), allow_tf32_};
  const Plan& p = plan(c, key);
  const float alpha = 1.0f, beta = c.accumulate ? 1.0f : 0.0f;
  check_blas(cublasLtMatmul(handle_, p.desc, &alpha, c.b.ptr, p.a, c.a.ptr, p.b, &beta, c.out.ptr, p.c, c.out.ptr, p.c,
                            &p.algo, workspace_, workspace_bytes_, stream),
             "cublasLtMatmul");
}

}  // namespace fm::kernels::cuda
