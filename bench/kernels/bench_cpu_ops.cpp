// Times every CpuOps op at the shapes of one LLaMA layer (plus the head and the optimizer) and
// prints a table: wall milliseconds per call (median of the repeats), the process CPU milliseconds
// of that same call (with --threads 1 a measure that other load on the machine hardly disturbs),
// and GFLOP/s (from wall time) for the products.
//
// usage: bench_cpu_ops [--threads N] [--repeats R] [B T C H Hkv F V]
//   defaults: 8 256 256 4 2 704 32000 (head dim C/H)
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"

namespace {

using fm::kernels::f32;
using fm::kernels::i32;

std::vector<float> random_floats(size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Timing {
  double wall_ms = 0, cpu_ms = 0;
};

double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

// The call with the median wall time among the repeats.
Timing median_ms(int repeats, const std::function<void()>& body) {
  body();  // warm-up: page faults, scratch buffers, BLAS buffers
  std::vector<Timing> runs;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = process_cpu_ms();
    const auto t0 = std::chrono::steady_clock::now();
    body();
    const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    runs.push_back({wall, process_cpu_ms() - c0});
  }
  std::sort(runs.begin(), runs.end(), [](const Timing& a, const Timing& b) { return a.wall_ms < b.wall_ms; });
  return runs[runs.size() / 2];
}

void row(const char* name, Timing t, double flops) {
  std::printf("%-34s %9.3f %9.3f", name, t.wall_ms, t.cpu_ms);
  if (flops > 0) std::printf("  %7.1f", flops / t.wall_ms * 1e-6);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, repeats = 20;
  std::vector<int> dims;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--threads" && a + 1 < argc) {
      threads = std::atoi(argv[++a]);
    } else if (arg == "--repeats" && a + 1 < argc) {
      repeats = std::max(1, std::atoi(argv[++a]));
    } else {
      dims.push_back(std::atoi(argv[a]));
    }
  }
  if (!dims.empty() && dims.size() != 7) {
    std::fprintf(stderr, "usage: %s [--threads N] [--repeats R] [B T C H Hkv F V]\n", argv[0]);
    return 2;
  }
  if (dims.empty()) dims = {8, 256, 256, 4, 2, 704, 32000};
  const int B = dims[0], T = dims[1], C = dims[2], H = dims[3], Hkv = dims[4], F = dims[5], V = dims[6];
  const fm::kernels::AttentionShape s{B, T, H, Hkv, C / H};
  const int N = B * T, W = s.qkv_width(), D = s.D;
  std::printf("B=%d T=%d C=%d H=%d Hkv=%d D=%d F=%d V=%d  tokens=%d  threads=%s\n", B, T, C, H, Hkv, D, F, V, N,
              threads > 0 ? std::to_string(threads).c_str() : "all");

  auto ops = fm::kernels::make_cpu_ops(threads);
  auto x = random_floats(size_t(N) * C, 1), y = random_floats(size_t(N) * C, 2), w = random_floats(C, 3);
  auto rstd = std::vector<float>(N), dx = std::vector<float>(x.size()), dw = std::vector<float>(C);
  auto wqkv = random_floats(size_t(W) * C, 4, 0.05f), qkv = random_floats(size_t(N) * W, 5);
  auto dqkv = std::vector<float>(qkv.size()), dwqkv = std::vector<float>(wqkv.size());
  auto att = std::vector<float>(size_t(N) * H * D), datt = random_floats(att.size(), 6);
  auto lse = std::vector<float>(size_t(B) * H * T);
  auto table = std::vector<float>(size_t(T) * D);
  fm::kernels::rope_table(table.data(), T, D, 10000.0, {});
  auto gateup = random_floats(size_t(N) * 2 * F, 7, 3.0f), dgateup = std::vector<float>(gateup.size());
  auto act = std::vector<float>(size_t(N) * F), dact = random_floats(act.size(), 8);
  auto wgu = random_floats(size_t(2) * F * C, 9, 0.05f), wdown = random_floats(size_t(C) * F, 10, 0.05f);
  auto wout = random_floats(size_t(V) * C, 11, 0.05f), logits = std::vector<float>(size_t(N) * V);
  auto losses = std::vector<float>(N);
  std::vector<int32_t> tokens(N);
  for (int n = 0; n < N; ++n) tokens[n] = (n * 7919) % V;
  auto dtable = std::vector<float>(size_t(V) * C);

  const double layer_params = double(W) * C + double(H) * D * C + 3.0 * double(F) * C + 2.0 * C;
  std::printf("%-34s %9s %9s  %7s\n", "op", "wall ms", "cpu ms", "GFLOP/s");
  // ---- layer forward
  row("rmsnorm_forward", median_ms(repeats, [&] {
        ops->rmsnorm_forward(f32(y.data()), f32(rstd.data()), f32(x.data()), f32(w.data()), N, C, 1e-5f);
      }), 0);
  row("matmul_nt qkv (N,W,C)", median_ms(repeats, [&] {
        ops->matmul_nt(f32(qkv.data()), f32(y.data()), f32(wqkv.data()), N, W, C, false);
      }), 2.0 * N * W * C);
  row("rope_forward", median_ms(repeats, [&] { ops->rope_forward(f32(qkv.data()), f32(table.data()), s); }), 0);
  const double att_flops = 4.0 * B * H * (double(T) * (T + 1) / 2) * D;  // causal QK^T + PV
  row("attention_forward", median_ms(repeats, [&] {
        ops->attention_forward(f32(att.data()), f32(lse.data()), f32(qkv.data()), s);
      }), att_flops);
  row("matmul_nt out proj (N,C,HD)", median_ms(repeats, [&] {
        ops->matmul_nt(f32(x.data()), f32(att.data()), f32(wqkv.data()), N, C, H * D, false);
      }), 2.0 * N * C * H * D);
  row("matmul_nt gateup (N,2F,C)", median_ms(repeats, [&] {
        ops->matmul_nt(f32(gateup.data()), f32(y.data()), f32(wgu.data()), N, 2 * F, C, false);
      }), 4.0 * N * F * C);
  row("swiglu_forward", median_ms(repeats, [&] { ops->swiglu_forward(f32(act.data()), f32(gateup.data()), N, F); }), 0);
  row("matmul_nt down (N,C,F)", median_ms(repeats, [&] {
        ops->matmul_nt(f32(x.data()), f32(act.data()), f32(wdown.data()), N, C, F, false);
      }), 2.0 * N * C * F);
  // ---- layer backward
  row("matmul_nn dx (N,C,F)", median_ms(repeats, [&] {
        ops->matmul_nn(f32(x.data()), f32(dact.data()), f32(wdown.data()), N, C, F, false);
      }), 2.0 * N * C * F);
  row("matmul_tn dW (F,C,N)", median_ms(repeats, [&] {
        ops->matmul_tn(f32(wdown.data()), f32(dact.data()), f32(y.data()), F, C, N, true);
      }), 2.0 * N * C * F);
  row("swiglu_backward", median_ms(repeats, [&] {
        ops->swiglu_backward(f32(dgateup.data()), f32(dact.data()), f32(gateup.data()), N, F);
      }), 0);
  row("attention_backward", median_ms(repeats, [&] {
        ops->attention_backward(f32(dqkv.data()), f32(datt.data()), f32(qkv.data()), f32(att.data()),
                                f32(lse.data()), s);
      }), 2.5 * att_flops);
  row("rope_backward", median_ms(repeats, [&] { ops->rope_backward(f32(dqkv.data()), f32(table.data()), s); }), 0);
  row("matmul_tn dWqkv (W,C,N)", median_ms(repeats, [&] {
        ops->matmul_tn(f32(dwqkv.data()), f32(dqkv.data()), f32(y.data()), W, C, N, true);
      }), 2.0 * N * W * C);
  row("rmsnorm_backward (accumulate dx)", median_ms(repeats, [&] {
        ops->rmsnorm_backward(f32(dx.data()), f32(dw.data()), f32(y.data()), f32(x.data()), f32(w.data()),
                              f32(rstd.data()), N, C, true);
      }), 0);
  // ---- embedding, head, loss
  row("embedding_forward", median_ms(repeats, [&] {
        ops->embedding_forward(f32(x.data()), i32(tokens.data()), f32(dtable.data()), N, C);
      }), 0);
  row("embedding_backward", median_ms(repeats, [&] {
        ops->embedding_backward(f32(dtable.data()), f32(y.data()), i32(tokens.data()), N, C, V);
      }), 0);
  row("matmul_nt lm head (N,V,C)", median_ms(std::max(3, repeats / 4), [&] {
        ops->matmul_nt(f32(logits.data()), f32(y.data()), f32(wout.data()), N, V, C, false);
      }), 2.0 * N * V * C);
  row("cross_entropy (in place dlogits)", median_ms(std::max(3, repeats / 4), [&] {
        ops->cross_entropy(f32(losses.data()), f32(logits.data()), f32(logits.data()), i32(tokens.data()), N, V,
                           1.0f / N);
      }), 0);
  // ---- optimizer over one layer's parameters
  const int64_t P = static_cast<int64_t>(layer_params);
  auto p = random_floats(P, 12), g = random_floats(P, 13), m = std::vector<float>(P), v = std::vector<float>(P);
  fm::kernels::AdamStep st;
  st.lr = 1e-3f;
  st.weight_decay = 0.1f;
  row(("adam_update (" + std::to_string(P) + " params)").c_str(), median_ms(repeats, [&] {
        ops->adam_update(f32(p.data()), f32(g.data()), f32(m.data()), f32(v.data()), {}, P, st);
      }), 0);
  row("sum_squares (same)", median_ms(repeats, [&] { ops->sum_squares(f32(g.data()), P); }), 0);
  return 0;
}
