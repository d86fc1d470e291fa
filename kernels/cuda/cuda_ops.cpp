// CudaOps: the Ops interface over the kernels of launch.h and cuBLASLt (gemm.h), on one stream.
#include "kernels/cuda/cuda_ops.h"

#include <cuda_runtime.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.h"
#include "runtime/base/error.h"

namespace fm::kernels::cuda {

// ---- shared helpers of launch.h -----------------------------------------------------------------

void check_cuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  int device = -1;
  cudaGetDevice(&device);
  throw RuntimeFault(fmt::format("cuda device {}: {}: {}: {}", device, what, cudaGetErrorName(e), cudaGetErrorString(e)));
}

void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

Scratch::~Scratch() {
  if (ptr_) cudaFree(ptr_);
}

void* Scratch::get(size_t bytes, cudaStream_t stream) {
  if (bytes <= bytes_) return ptr_;
  // Kernels already enqueued may still use the old block: let them finish before freeing it.
  check_cuda(cudaStreamSynchronize(stream), "scratch: synchronize");
  if (ptr_) check_cuda(cudaFree(ptr_), "scratch: cudaFree");
  ptr_ = nullptr;
  bytes_ = 0;
  const size_t want = bytes + bytes / 2;  // grow geometrically: few reallocations
  check_cuda(cudaMalloc(&ptr_, want), "scratch: cudaMalloc");
  bytes_ = want;
  return ptr_;
}

namespace {

// ---- host-side conversions (copy between two host buffers of different types) ----------------
uint16_t host_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float host_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

bool is_device_pointer(const void* p) {
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // an unknown pointer is host memory; clear the sticky-free error state
    return false;
  }
  return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
}

const int32_t* ints(View v, const char* op) {
  FM_CHECK(v.dtype == DType::I32, std::string("CudaOps::") + op + ": expected an i32 view, got " + dtype_name(v.dtype));
  return v.as<const int32_t>();
}

void check_float(View v, const char* op) {
  FM_CHECK(!v || v.dtype == DType::F32 || v.dtype == DType::BF16 || v.dtype == DType::F16,
           std::string("CudaOps::") + op + ": expected a float view, got " + dtype_name(v.dtype));
}

class CudaOpsImpl final : public CudaOps {
 public:
  CudaOpsImpl(int device, const CudaOptions& options) : device_(device) {
    int count = 0;
    check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
    if (device < 0 || device >= count)
      throw RuntimeFault(fmt::format("cuda: device {} does not exist ({} visible)", device, count));
    check_cuda(cudaSetDevice(device), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    check_cuda(cudaMallocHost(&host_result_, 64), "cudaMallocHost");
    check_cuda(cudaMalloc(&device_result_, 64), "cudaMalloc");
    gemm_ = std::make_unique<Gemm>(options.gemm_workspace_bytes, options.allow_tf32);
  }

  ~CudaOpsImpl() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    gemm_.reset();
    if (device_result_) cudaFree(device_result_);
    if (host_result_) cudaFreeHost(host_result_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "cuda"; }
  int device() const override { return device_; }
  void* stream() const override { return stream_; }

  // ---- memory -----------------------------------------------------------------------------------
  void* alloc(size_t bytes) override {
    activate();
    void* p = nullptr;
    check_cuda(cudaMalloc(&p, bytes == 0 ? 1 : bytes), "cudaMalloc");
    check_cuda(cudaMemsetAsync(p, 0, bytes, stream_), "alloc: zero fill");
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    activate();
    check_cuda(cudaStreamSynchronize(stream_), "release: synchronize");
    check_cuda(cudaFree(p), "cudaFree");
  }
  void zero(View x, int64_t n) override {
    if (n <= 0) return;
    activate();
    check_cuda(cudaMemsetAsync(x.ptr, 0, size_t(n) * dtype_size(x.dtype), stream_), "zero");
  }
  void copy(View dst, View src, int64_t n) override;
  void synchronize() override {
    activate();
    check_cuda(cudaStreamSynchronize(stream_), "synchronize");
  }

  // ---- GEMM ---------------------------------------------------------------------------------------
  void matmul_nt(View out, View a, View b, int M, int N, int K, bool acc) override {
    activate();
    gemm_->run(nt_call(out, a, b, M, N, K, acc), stream_);
  }
  void matmul_nn(View out, View a, View b, int M, int N, int K, bool acc) override {
    activate();
    gemm_->run(nn_call(out, a, b, M, N, K, acc), stream_);
  }
  void matmul_tn(View out, View a, View b, int M, int N, int K, bool acc) override {
    activate();
    gemm_->run(tn_call(out, a, b, M, N, K, acc), stream_);
  }
  void matmul_tn_rows(View out, View a, View b, int M, int N, int K, int r0, int r1, bool acc) override {
    FM_CHECK(0 <= r0 && r0 <= r1 && r1 <= M, "CudaOps::matmul_tn_rows: bad row range");
    activate();
    gemm_->run(tn_rows_call(out, a, b, M, N, K, r0, r1, acc), stream_);
  }

  // ---- embedding ----------------------------------------------------------------------------------
  void embedding_forward(View out, View tokens, View table, int N, int C) override {
    activate();
    launch_embedding_forward(stream_, ref(out), ints(tokens, "embedding_forward"), ref(table), N, C);
  }
  void embedding_backward(View dtable, View dout, View tokens, int N, int C, int V) override {
    activate();
    launch_embedding_backward(stream_, ref(dtable), ref(dout), ints(tokens, "embedding_backward"), N, C, 0, V,
                              scratch_);
  }
  void embedding_backward_rows(View dtable_rows, View dout, View tokens, int N, int C, int r0, int r1,
                               int V) override {
    FM_CHECK(0 <= r0 && r0 <= r1 && r1 <= V, "CudaOps::embedding_backward_rows: bad row range");
    activate();
    launch_embedding_backward(stream_, ref(dtable_rows), ref(dout), ints(tokens, "embedding_backward_rows"), N, C,
                              r0, r1, scratch_);
  }

  // ---- RMSNorm ------------------------------------------------------------------------------------
  void rmsnorm_forward(View out, View rstd, View x, View w, int N, int C, float eps) override {
    activate();
    launch_rmsnorm_forward(stream_, ref(out), ref(rstd), ref(x), ref(w), N, C, eps);
  }
  void rmsnorm_backward(View dx, View dw, View dout, View x, View w, View rstd, int N, int C,
                        bool accumulate_dx) override {
    activate();
    launch_rmsnorm_backward(stream_, ref(dx), ref(dw), ref(dout), ref(x), ref(w), ref(rstd), N, C, accumulate_dx,
                            scratch_);
  }

  // ---- RoPE ---------------------------------------------------------------------------------------
  void rope_forward(View qkv, View cos_sin, const AttentionShape& s) override {
    activate();
    launch_rope(stream_, ref(qkv), ref(cos_sin), s, false);
  }
  void rope_backward(View dqkv, View cos_sin, const AttentionShape& s) override {
    activate();
    launch_rope(stream_, ref(dqkv), ref(cos_sin), s, true);
  }

  // ---- attention ----------------------------------------------------------------------------------
  void attention_forward(View out, View lse, View qkv, const AttentionShape& s) override {
    activate();
    launch_attention_forward(stream_, ref(out), ref(lse), ref(qkv), s);
  }
  void attention_backward(View dqkv, View dout, View qkv, View out, View lse, const AttentionShape& s) override {
    activate();
    launch_attention_backward(stream_, ref(dqkv), ref(dout), ref(qkv), ref(out), ref(lse), s, scratch_);
  }

  // ---- SwiGLU -------------------------------------------------------------------------------------
  void swiglu_forward(View out, View gateup, int N, int F) override {
    activate();
    launch_swiglu_forward(stream_, ref(out), ref(gateup), N, F);
  }
  void swiglu_backward(View dgateup, View dout, View gateup, int N, int F) override {
    activate();
    launch_swiglu_backward(stream_, ref(dgateup), ref(dout), ref(gateup), N, F);
  }

  // ---- cross-entropy ------------------------------------------------------------------------------
  double cross_entropy(View losses, View dlogits, View logits, View targets, int N, int V,
                       float grad_scale) override {
    activate();
    check_float(losses, "cross_entropy");
    check_float(dlogits, "cross_entropy");
    auto* result = static_cast<CrossEntropyResult*>(device_result_);
    launch_cross_entropy(stream_, ref(losses), ref(dlogits), ref(logits), ints(targets, "cross_entropy"), N, V,
                         grad_scale, result, scratch_);
    CrossEntropyResult host{};
    read_back(&host, result, sizeof(host));
    FM_CHECK(host.bad_targets == 0, fmt::format("CudaOps::cross_entropy: {} targets outside [0, {}) and not -100",
                                                host.bad_targets, V));
    return host.loss_sum;
  }

  // ---- elementwise and reductions -----------------------------------------------------------------
  void add(View out, View a, View b, int64_t n) override {
    activate();
    launch_add(stream_, ref(out), ref(a), ref(b), n);
  }
  void accumulate(View acc, View x, int64_t n) override {
    activate();
    launch_add(stream_, ref(acc), ref(acc), ref(x), n);
  }
  void scale(View x, float s, int64_t n) override {
    activate();
    launch_scale(stream_, ref(x), s, n);
  }
  double sum_squares(View x, int64_t n) override {
    activate();
    auto* result = static_cast<double*>(device_result_);
    launch_sum_squares(stream_, ref(x), n, result, scratch_);
    double host = 0;
    read_back(&host, result, sizeof(host));
    return host;
  }

  // ---- optimizer ----------------------------------------------------------------------------------
  void adam_update(View master, View grad, View m, View v, View param_out, int64_t n, const AdamStep& s) override {
    FM_CHECK(s.step >= 1, "adam_update: step is 1-based");
    check_float(grad, "adam_update");
    check_float(param_out, "adam_update");
    activate();
    launch_adam(stream_, ref(master), ref(grad), ref(m), ref(v), ref(param_out), n, s);
  }

 private:
  void activate() const { check_cuda(cudaSetDevice(device_), "cudaSetDevice"); }

  // Copies `bytes` of device memory through the pinned buffer and waits for them.
  void read_back(void* host, const void* device, size_t bytes) {
    check_cuda(cudaMemcpyAsync(host_result_, device, bytes, cudaMemcpyDeviceToHost, stream_), "read back");
    check_cuda(cudaStreamSynchronize(stream_), "read back: synchronize");
    std::memcpy(host, host_result_, bytes);
  }

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  void* host_result_ = nullptr;    // pinned, for results returned to the caller
  void* device_result_ = nullptr;  // device side of those results
  Scratch scratch_;
  std::unique_ptr<Gemm> gemm_;
};

// Same type: one cudaMemcpyAsync (UVA tells the direction). Different types: the conversion runs on
// the device; a host side is staged through scratch in its own type. Both host: a host loop. When
// either side is host memory the stream is synchronized before returning (ops.h callers reuse host
// buffers at once).
void CudaOpsImpl::copy(View dst, View src, int64_t n) {
  if (n <= 0) return;
  activate();
  FM_CHECK(dst.dtype == src.dtype || (dst.dtype != DType::I32 && src.dtype != DType::I32),
           "CudaOps::copy: i32 converts to nothing");
  const bool dst_dev = is_device_pointer(dst.ptr), src_dev = is_device_pointer(src.ptr);
  const size_t src_bytes = size_t(n) * dtype_size(src.dtype), dst_bytes = size_t(n) * dtype_size(dst.dtype);
  if (dst.dtype == src.dtype) {
    check_cuda(cudaMemcpyAsync(dst.ptr, src.ptr, src_bytes, cudaMemcpyDefault, stream_), "copy");
  } else if (dst_dev && src_dev) {
    launch_convert(stream_, ref(dst), ref(src), n);
  } else if (dst_dev) {  // host source: stage it on the device in its own type, convert there
    void* staged = scratch_.get(src_bytes, stream_);
    check_cuda(cudaMemcpyAsync(staged, src.ptr, src_bytes, cudaMemcpyHostToDevice, stream_), "copy: upload");
    launch_convert(stream_, ref(dst), Ref{staged, static_cast<int>(src.dtype)}, n);
  } else if (src_dev) {  // host destination: convert on the device into scratch, then download
    void* staged = scratch_.get(dst_bytes, stream_);
    launch_convert(stream_, Ref{staged, static_cast<int>(dst.dtype)}, ref(src), n);
    check_cuda(cudaMemcpyAsync(dst.ptr, staged, dst_bytes, cudaMemcpyDeviceToHost, stream_), "copy: download");
  } else {
    FM_CHECK((dst.dtype == DType::F32 || dst.dtype == DType::BF16) &&
                 (src.dtype == DType::F32 || src.dtype == DType::BF16),
             "CudaOps::copy between two host buffers converts f32 <-> bf16 only");
    if (src.dtype == DType::F32)
      for (int64_t i = 0; i < n; ++i) dst.as<uint16_t>()[i] = host_bf16(src.as<const float>()[i]);
    else
      for (int64_t i = 0; i < n; ++i) dst.as<float>()[i] = host_float(src.as<const uint16_t>()[i]);
    return;
  }
  if (!dst_dev || !src_dev) check_cuda(cudaStreamSynchronize(stream_), "copy: synchronize");
}

}  // namespace

std::unique_ptr<Ops> make_cuda_ops(int device, const CudaOptions& options) {
  return std::make_unique<CudaOpsImpl>(device, options);
}

CudaOps* as_cuda_ops(Ops& ops) { return dynamic_cast<CudaOps*>(&ops); }

}  // namespace fm::kernels::cuda
