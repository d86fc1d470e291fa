// CpuOps: the Ops interface over the float instances of cpu_kernels.h, run in a TBB arena.
#include "kernels/cpu/cpu_ops.h"

#include <tbb/task_arena.h>

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/parallel.h"
#include "runtime/base/error.h"

namespace fm::kernels {

namespace {

using cpu::for_blocks;

float* f(View v) {
  FM_CHECK(!v || v.dtype == DType::F32, std::string("CpuOps: expected an f32 view, got ") + dtype_name(v.dtype));
  return v.as<float>();
}
const int32_t* i(View v) {
  FM_CHECK(v.dtype == DType::I32, std::string("CpuOps: expected an i32 view, got ") + dtype_name(v.dtype));
  return v.as<int32_t>();
}

constexpr int64_t kCopyGrain = int64_t{1} << 16;

// Element access of the float types as float; each (source, destination) pair gets its own loop.
template <DType kType>
float load_float(const void* p, int64_t k) {
  if constexpr (kType == DType::F32) return static_cast<const float*>(p)[k];
  if constexpr (kType == DType::BF16) return cpu::bf16_to_float(static_cast<const uint16_t*>(p)[k]);
  if constexpr (kType == DType::F16) return cpu::f16_to_float(static_cast<const uint16_t*>(p)[k]);
}
template <DType kType>
void store_float(void* p, int64_t k, float x) {
  if constexpr (kType == DType::F32) static_cast<float*>(p)[k] = x;
  if constexpr (kType == DType::BF16) static_cast<uint16_t*>(p)[k] = cpu::float_to_bf16(x);
  if constexpr (kType == DType::F16) static_cast<uint16_t*>(p)[k] = cpu::float_to_f16(x);
}

template <DType kSrc, DType kDst>
void convert_loop(void* dst, const void* src, int64_t n) {
  for_blocks(n, kCopyGrain, [&](int64_t a, int64_t b) {
    for (int64_t k = a; k < b; ++k) store_float<kDst>(dst, k, load_float<kSrc>(src, k));
  });
}

template <DType kSrc>
void convert_from(View dst, const void* src, int64_t n) {
  switch (dst.dtype) {
    case DType::F32: return convert_loop<kSrc, DType::F32>(dst.ptr, src, n);
    case DType::BF16: return convert_loop<kSrc, DType::BF16>(dst.ptr, src, n);
    case DType::F16: return convert_loop<kSrc, DType::F16>(dst.ptr, src, n);
    case DType::I32: break;
  }
  FM_CHECK(false, "CpuOps::copy: i32 converts to nothing");
}

// Same type: a parallel memcpy; between float types: rounding conversions (convert.h).
void convert_copy(View dst, View src, int64_t n) {
  if (dst.dtype == src.dtype) {
    const size_t width = dtype_size(dst.dtype);
    auto* d = static_cast<char*>(dst.ptr);
    const auto* s = static_cast<const char*>(src.ptr);
    for_blocks(n, kCopyGrain, [&](int64_t a, int64_t b) { std::memcpy(d + a * width, s + a * width, (b - a) * width); });
    return;
  }
  switch (src.dtype) {
    case DType::F32: return convert_from<DType::F32>(dst, src.ptr, n);
    case DType::BF16: return convert_from<DType::BF16>(dst, src.ptr, n);
    case DType::F16: return convert_from<DType::F16>(dst, src.ptr, n);
    case DType::I32: break;
  }
  FM_CHECK(false, "CpuOps::copy: i32 converts to nothing");
}

class CpuOps final : public Ops {
 public:
  explicit CpuOps(int threads)
      : arena_(threads > 0 ? threads : tbb::task_arena::automatic) {
    cpu::ensure_single_threaded_blas();
  }

  const char* name() const override { return "cpu"; }

  void* alloc(size_t bytes) override {
    constexpr size_t kAlign = 64;
    const size_t rounded = (std::max<size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded);
    if (!p) throw std::bad_alloc();
    run([&] {
      for_blocks(static_cast<int64_t>(rounded), int64_t{1} << 20,
                 [&](int64_t a, int64_t b) { std::memset(static_cast<char*>(p) + a, 0, b - a); });
    });
    return p;
  }
  void release(void* p) override { std::free(p); }
  void zero(View x, int64_t n) override {
    auto* p = static_cast<char*>(x.ptr);
    const int64_t bytes = n * static_cast<int64_t>(dtype_size(x.dtype));
    run([&] { for_blocks(bytes, int64_t{1} << 20, [&](int64_t a, int64_t b) { std::memset(p + a, 0, b - a); }); });
  }
  void copy(View dst, View src, int64_t n) override { run([&] { convert_copy(dst, src, n); }); }

  void matmul_nt(View out, View a, View b, int M, int N, int K, bool acc) override {
    run([&] { cpu::matmul_nt(f(out), f(a), f(b), M, N, K, acc); });
  }
  void matmul_nn(View out, View a, View b, int M, int N, int K, bool acc) override {
    run([&] { cpu::matmul_nn(f(out), f(a), f(b), M, N, K, acc); });
  }
  void matmul_tn(View out, View a, View b, int M, int N, int K, bool acc) override {
    run([&] { cpu::matmul_tn(f(out), f(a), f(b), M, N, K, acc); });
  }
  void matmul_tn_rows(View out, View a, View b, int M, int N, int K, int r0, int r1, bool acc) override {
    run([&] { cpu::matmul_tn_rows(f(out), f(a), f(b), M, N, K, r0, r1, acc); });
  }

  void embedding_forward(View out, View tokens, View table, int N, int C) override {
    run([&] { cpu::embedding_forward(f(out), i(tokens), f(table), N, C); });
  }
  void embedding_backward(View dtable, View dout, View tokens, int N, int C, int V) override {
    run([&] { cpu::embedding_backward(f(dtable), f(dout), i(tokens), N, C, V); });
  }
  void embedding_backward_rows(View dtable_rows, View dout, View tokens, int N, int C, int r0, int r1,
                               int V) override {
    run([&] { cpu::embedding_backward_rows(f(dtable_rows), f(dout), i(tokens), N, C, r0, r1, V); });
  }

  void rmsnorm_forward(View out, View rstd, View x, View w, int N, int C, float eps) override {
    run([&] { cpu::rmsnorm_forward(f(out), f(rstd), f(x), f(w), N, C, eps); });
  }
  void rmsnorm_backward(View dx, View dw, View dout, View x, View w, View rstd, int N, int C,
                        bool accumulate_dx) override {
    run([&] { cpu::rmsnorm_backward(f(dx), f(dw), f(dout), f(x), f(w), f(rstd), N, C, accumulate_dx); });
  }

  void rope_forward(View qkv, View cos_sin, const AttentionShape& s) override {
    run([&] { cpu::rope_forward(f(qkv), f(cos_sin), s); });
  }
  void rope_backward(View dqkv, View cos_sin, const AttentionShape& s) override {
    run([&] { cpu::rope_backward(f(dqkv), f(cos_sin), s); });
  }

  void attention_forward(View out, View lse, View qkv, const AttentionShape& s) override {
    run([&] { cpu::attention_forward(f(out), f(lse), f(qkv), s); });
  }
  void attention_backward(View dqkv, View dout, View qkv, View out, View lse, const AttentionShape& s) override {
    run([&] { cpu::attention_backward(f(dqkv), f(dout), f(qkv), f(out), f(lse), s); });
  }

  void swiglu_forward(View out, View gateup, int N, int F) override {
    run([&] { cpu::swiglu_forward(f(out), f(gateup), N, F); });
  }
  void swiglu_backward(View dgateup, View dout, View gateup, int N, int F) override {
    run([&] { cpu::swiglu_backward(f(dgateup), f(dout), f(gateup), N, F); });
  }

  double cross_entropy(View losses, View dlogits, View logits, View targets, int N, int V,
                       float grad_scale) override {
    double total = 0;
    run([&] { total = cpu::cross_entropy(f(losses), f(dlogits), f(logits), i(targets), N, V, grad_scale); });
    return total;
  }

  void add(View out, View a, View b, int64_t n) override { run([&] { cpu::add(f(out), f(a), f(b), n); }); }
  void accumulate(View acc, View x, int64_t n) override { run([&] { cpu::accumulate(f(acc), f(x), n); }); }
  void scale(View x, float s, int64_t n) override { run([&] { cpu::scale(f(x), s, n); }); }
  double sum_squares(View x, int64_t n) override {
    double total = 0;
    run([&] { total = cpu::sum_squares(f(x), n); });
    return total;
  }

  void adam_update(View master, View grad, View m, View v, View param_out, int64_t n,
                   const AdamStep& s) override {
    run([&] {
      const bool direct = !param_out || param_out.dtype == DType::F32;
      cpu::adam_update(f(master), f(grad), f(m), f(v), direct ? f(param_out) : nullptr, n, s);
      if (!direct) convert_copy(param_out, master, n);
    });
  }

 private:
  template <typename Body>
  void run(const Body& body) {
    arena_.execute(body);
  }

  tbb::task_arena arena_;
};

}  // namespace

std::unique_ptr<Ops> make_cpu_ops(int threads) { return std::make_unique<CpuOps>(threads); }

}  // namespace fm::kernels
