// Times the CUDA ops at the shapes of a TinyLlama-1.1B training step (configs/models/tinyllama-1.1b.json,
// sequence 2048) and a Llama-3-8B-like attention, and prints one line per op: milliseconds per call
// (mean over the timed calls, after warm-up, the stream synchronised around the loop), and TFLOP/s
// for products or GB/s for memory-bound ops.
//
// FLOPs: GEMM 2*M*N*K. Attention counts causal work as FlashAttention's benchmarks do: forward
// 4*B*H*T^2*D / 2 (QK^T and PV, half masked), backward 2.5 x forward (five products for two).
// Bytes: what the op must read and write once (its inputs and outputs), not cache traffic.
//
// usage: bench_cuda_ops [--repeats R] [--batch B] [--seq T] [--json PATH]
//   defaults: R 20, B 4, T 2048. --json also writes one JSON object per op to PATH.
// Without a GPU it prints "SKIP: no GPU (<reason>)" and exits 77.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_probe.h"

namespace {

using namespace fm::kernels;

struct Options {
  int repeats = 20;
  int batch = 4;
  int seq = 2048;
  std::string json;
};

Ops* g_ops = nullptr;
FILE* g_json = nullptr;

// A device buffer of n elements of type t, filled with small pseudo-random values.
class Buffer {
 public:
  Buffer(int64_t n, DType t, uint32_t seed = 1, float scale = 1.0f) : n_(n), t_(t) {
    p_ = g_ops->alloc(size_t(n) * dtype_size(t));
    if (t == DType::I32) return;
    std::vector<float> host(size_t(std::min<int64_t>(n, int64_t{1} << 24)));
    uint32_t x = seed * 2654435761u + 1;
    for (float& v : host) {
      x = x * 1664525u + 1013904223u;
      v = scale * (float(x >> 8) / float(1 << 24) * 2.0f - 1.0f);
    }
    // Large buffers repeat the first 16M values: enough variety for timing.
    for (int64_t at = 0; at < n; at += int64_t(host.size())) {
      const int64_t count = std::min<int64_t>(int64_t(host.size()), n - at);
      g_ops->copy(View{static_cast<char*>(p_) + size_t(at) * dtype_size(t), t}, f32(host.data()), count);
    }
  }
  ~Buffer() { g_ops->release(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  View v() const { return {p_, t_}; }

 private:
  int64_t n_;
  DType t_;
  void* p_ = nullptr;
};

double time_ms(int repeats, const std::function<void()>& body) {
  for (int i = 0; i < 3; ++i) body();  // warm-up: heuristics, scratch growth, clocks
  g_ops->synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) body();
  g_ops->synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

void report(const std::string& name, const std::string& shape, double ms, double flops, double bytes) {
  const double tflops = flops > 0 ? flops / (ms * 1e-3) / 1e12 : 0;
  const double gbps = bytes > 0 ? bytes / (ms * 1e-3) / 1e9 : 0;
  std::printf("%-28s %-40s %9.3f ms", name.c_str(), shape.c_str(), ms);
  if (flops > 0) std::printf("  %7.1f TFLOP/s", tflops);
  if (bytes > 0) std::printf("  %7.1f GB/s", gbps);
  std::printf("\n");
  std::fflush(stdout);
  if (g_json) {
    std::fprintf(g_json, "{\"op\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f", name.c_str(), shape.c_str(), ms);
    if (flops > 0) std::fprintf(g_json, ", \"tflops\": %.3f", tflops);
    if (bytes > 0) std::fprintf(g_json, ", \"gbps\": %.3f", gbps);
    std::fprintf(g_json, "}\n");
    std::fflush(g_json);
  }
}

enum class Form { NT, NN, TN };

void gemm(const Options& o, const std::string& name, Form form, int M, int N, int K, DType in, DType out, bool acc) {
  Buffer a(int64_t(M) * K, in, 1), b(int64_t(N) * K, in, 2), c(int64_t(M) * N, out, 3);
  const double ms = time_ms(o.repeats, [&] {
    switch (form) {
      case Form::NT: g_ops->matmul_nt(c.v(), a.v(), b.v(), M, N, K, acc); break;
      case Form::NN: g_ops->matmul_nn(c.v(), a.v(), b.v(), M, N, K, acc); break;
      case Form::TN: g_ops->matmul_tn(c.v(), a.v(), b.v(), M, N, K, acc); break;
    }
  });
  const char* forms[] = {"nt", "nn", "tn"};
  report(name, std::string(forms[int(form)]) + " M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" +
                   std::to_string(K) + " " + dtype_name(in) + "->" + dtype_name(out),
         ms, 2.0 * M * N * double(K), 0);
}

void attention(const Options& o, const AttentionShape& s, DType t) {
  const int64_t N = int64_t(s.B) * s.T;
  Buffer qkv(N * s.qkv_width(), t, 4), out(N * s.H * s.D, t, 5), lse(int64_t(s.B) * s.H * s.T, DType::F32, 6);
  Buffer dout(N * s.H * s.D, t, 7), dqkv(N * s.qkv_width(), t, 8);
  const std::string shape = "B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " H=" + std::to_string(s.H) +
                            " Hkv=" + std::to_string(s.Hkv) + " D=" + std::to_string(s.D) + " " + dtype_name(t);
  const double fwd_flops = 4.0 * s.B * s.H * double(s.T) * s.T * s.D / 2.0;
  const double fwd = time_ms(o.repeats, [&] { g_ops->attention_forward(out.v(), lse.v(), qkv.v(), s); });
  report("attention_forward", shape, fwd, fwd_flops, 0);
  const double bwd = time_ms(o.repeats, [&] {
    g_ops->attention_backward(dqkv.v(), dout.v(), qkv.v(), out.v(), lse.v(), s);
  });
  report("attention_backward", shape, bwd, 2.5 * fwd_flops, 0);
  report("attention_fwd+bwd", shape, fwd + bwd, 3.5 * fwd_flops, 0);
}

void memory_bound(const Options& o, int N, int C, int F, int V) {
  const DType bf = DType::BF16;
  const double e = 2.0;  // bytes per bf16 element
  {
    Buffer logits(int64_t(N) * V, bf, 9, 4.0f), losses(N, DType::F32, 10);
    std::vector<int32_t> host(static_cast<size_t>(N));
    for (int i = 0; i < N; ++i) host[size_t(i)] = (i * 7919) % V;
    Buffer targets(N, DType::I32);
    g_ops->copy(targets.v(), i32(host.data()), N);
    const double ms = time_ms(o.repeats, [&] {
      g_ops->cross_entropy(losses.v(), logits.v(), logits.v(), targets.v(), N, V, 1.0f / N);
    });
    report("cross_entropy (in place)", "N=" + std::to_string(N) + " V=" + std::to_string(V) + " bf16", ms, 0,
           2.0 * N * double(V) * e);
  }
  {
    Buffer x(int64_t(N) * C, bf, 11), w(C, bf, 12), y(int64_t(N) * C, bf, 13), rstd(N, DType::F32, 14);
    Buffer dx(int64_t(N) * C, bf, 15), dw(C, DType::F32, 16);
    const std::string shape = "N=" + std::to_string(N) + " C=" + std::to_string(C) + " bf16";
    double ms = time_ms(o.repeats, [&] { g_ops->rmsnorm_forward(y.v(), rstd.v(), x.v(), w.v(), N, C, 1e-5f); });
    report("rmsnorm_forward", shape, ms, 0, 2.0 * N * double(C) * e);
    ms = time_ms(o.repeats, [&] {
      g_ops->rmsnorm_backward(dx.v(), dw.v(), y.v(), x.v(), w.v(), rstd.v(), N, C, true);
    });
    report("rmsnorm_backward", shape, ms, 0, 4.0 * N * double(C) * e);
  }
  {
    Buffer gu(int64_t(N) * 2 * F, bf, 17), act(int64_t(N) * F, bf, 18), dgu(int64_t(N) * 2 * F, bf, 19);
    const std::string shape = "N=" + std::to_string(N) + " F=" + std::to_string(F) + " bf16";
    double ms = time_ms(o.repeats, [&] { g_ops->swiglu_forward(act.v(), gu.v(), N, F); });
    report("swiglu_forward", shape, ms, 0, 3.0 * N * double(F) * e);
    ms = time_ms(o.repeats, [&] { g_ops->swiglu_backward(dgu.v(), act.v(), gu.v(), N, F); });
    report("swiglu_backward", shape, ms, 0, 5.0 * N * double(F) * e);
  }
  {
    std::vector<int32_t> host(static_cast<size_t>(N));
    for (int i = 0; i < N; ++i) host[size_t(i)] = int32_t((uint64_t(i) * 2654435761u) % uint64_t(V));
    Buffer tokens(N, DType::I32), dout(int64_t(N) * C, bf, 20), dtable(int64_t(V) * C, DType::F32, 21);
    g_ops->copy(tokens.v(), i32(host.data()), N);
    const double ms = time_ms(o.repeats, [&] { g_ops->embedding_backward(dtable.v(), dout.v(), tokens.v(), N, C, V); });
    report("embedding_backward", "N=" + std::to_string(N) + " C=" + std::to_string(C) + " V=" + std::to_string(V),
           ms, 0, N * double(C) * (e + 8.0));
  }
  {
    const int64_t n = int64_t{100} << 20;
    Buffer master(n, DType::F32, 22), grad(n, DType::F32, 23), m(n, DType::F32, 24), v(n, DType::F32, 25, 0.01f);
    Buffer out(n, bf, 26);
    AdamStep s;
    s.lr = 1e-4f, s.weight_decay = 0.1f, s.step = 10;
    const double ms = time_ms(o.repeats, [&] { g_ops->adam_update(master.v(), grad.v(), m.v(), v.v(), out.v(), n, s); });
    report("adam_update (bf16 copy)", "n=" + std::to_string(n), ms, 0, double(n) * (4 * 4 + 3 * 4 + e));
    const double ms2 = time_ms(o.repeats, [&] { g_ops->sum_squares(grad.v(), n); });
    report("sum_squares", "n=" + std::to_string(n) + " f32", ms2, 0, double(n) * 4);
  }
}

int run(const Options& o) {
  const int N = o.batch * o.seq, C = 2048, F = 5632, V = 32000;
  const AttentionShape tiny{o.batch, o.seq, 32, 4, 64};
  std::printf("# TinyLlama-1.1B shapes: %d sequences x %d tokens (%d tokens), C=%d F=%d V=%d\n", o.batch, o.seq, N, C,
              F, V);
  const DType bf = DType::BF16, f = DType::F32;
  gemm(o, "gemm (peak reference)", Form::NT, 8192, 8192, 8192, bf, bf, false);
  gemm(o, "qkv_proj forward", Form::NT, N, tiny.qkv_width(), C, bf, bf, false);
  gemm(o, "gate_up forward", Form::NT, N, 2 * F, C, bf, bf, false);
  gemm(o, "down_proj forward (+res)", Form::NT, N, C, F, bf, bf, true);
  gemm(o, "lm_head forward", Form::NT, N, V, C, bf, bf, false);
  gemm(o, "gate_up input grad", Form::NN, N, C, 2 * F, bf, bf, false);
  gemm(o, "gate_up weight grad", Form::TN, 2 * F, C, N, bf, f, true);
  gemm(o, "lm_head weight grad", Form::TN, V, C, N, bf, f, true);
  gemm(o, "fp32 gemm (no TF32)", Form::NT, 4096, 4096, 4096, f, f, false);
  attention(o, tiny, bf);
  attention(o, {std::max(1, o.batch / 2), o.seq, 32, 8, 128}, bf);
  attention(o, {1, 1024, 8, 2, 64}, f);
  memory_bound(o, N, C, F, V);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_cuda_ops: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--repeats") o.repeats = std::atoi(next().c_str());
    else if (a == "--batch") o.batch = std::atoi(next().c_str());
    else if (a == "--seq") o.seq = std::atoi(next().c_str());
    else if (a == "--json") o.json = next();
    else {
      std::fprintf(stderr, "usage: bench_cuda_ops [--repeats R] [--batch B] [--seq T] [--json PATH]\n");
      return 2;
    }
  }
  if (o.repeats < 1 || o.batch < 1 || o.seq < 1) {
    std::fprintf(stderr, "bench_cuda_ops: --repeats, --batch and --seq must be positive\n");
    return 2;
  }
  std::string why;
  if (!cuda::device_available(&why)) {
    std::printf("SKIP: no GPU (%s)\n", why.c_str());
    return 77;
  }
  if (!o.json.empty() && !(g_json = std::fopen(o.json.c_str(), "w"))) {
    std::fprintf(stderr, "bench_cuda_ops: cannot write %s\n", o.json.c_str());
    return 2;
  }
  const cuda::LinkReport r = cuda::link_report();
  std::printf("# device 0: %s (sm_%d); compiled for %s\n", r.device_name.c_str(), r.compute_capability,
              cuda::compiled_archs().c_str());
  auto ops = cuda::make_cuda_ops(0);
  g_ops = ops.get();
  const int rc = run(o);
  if (g_json) std::fclose(g_json);
  return rc;
}
