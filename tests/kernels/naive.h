// Naive reference loops for the kernel tests: serial, double precision, the formulas written the
// plainest way (full T x T attention, explicit softmax). They share no code with kernels/cpu.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/ops.h"

namespace fm::kernels::naive {

using Vec = std::vector<double>;

// out(M,N) = op(a) op(b) [+ out] with op(a) (M,K), op(b) (K,N); a is (K,M) when ta, b (N,K) when tb.
inline void matmul(Vec& out, const Vec& a, const Vec& b, int M, int N, int K, bool ta, bool tb,
                   bool accumulate) {
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) {
        const double av = ta ? a[size_t(k) * M + i] : a[size_t(i) * K + k];
        const double bv = tb ? b[size_t(j) * K + k] : b[size_t(k) * N + j];
        s += av * bv;
      }
      out[size_t(i) * N + j] = (accumulate ? out[size_t(i) * N + j] : 0.0) + s;
    }
}

inline void rmsnorm_forward(Vec& out, Vec& rstd, const Vec& x, const Vec& w, int N, int C, double eps) {
  for (int n = 0; n < N; ++n) {
    double ss = 0;
    for (int c = 0; c < C; ++c) ss += x[size_t(n) * C + c] * x[size_t(n) * C + c];
    rstd[n] = 1.0 / std::sqrt(ss / C + eps);
    for (int c = 0; c < C; ++c) out[size_t(n) * C + c] = x[size_t(n) * C + c] * rstd[n] * w[c];
  }
}

// Rotates head vectors by position: pairs (i, i + D/2) with angle from the table row of position t.
inline void rope_forward(Vec& qkv, const Vec& cos_sin, const AttentionShape& s) {
  const int W = s.qkv_width(), half = s.D / 2;
  for (int b = 0; b < s.B; ++b)
    for (int t = 0; t < s.T; ++t)
      for (int h = 0; h < s.H + s.Hkv; ++h) {
        double* x = &qkv[(size_t(b) * s.T + t) * W + size_t(h) * s.D];
        for (int i = 0; i < half; ++i) {
          const double c = cos_sin[size_t(t) * s.D + i], sn = cos_sin[size_t(t) * s.D + half + i];
          const double x1 = x[i], x2 = x[i + half];
          x[i] = x1 * c - x2 * sn;
          x[i + half] = x2 * c + x1 * sn;
        }
      }
}

// Full causal softmax attention per (sequence, head); lse(B,H,T).
inline void attention_forward(Vec& out, Vec& lse, const Vec& qkv, const AttentionShape& s) {
  const int W = s.qkv_width(), HD = s.H * s.D, group = s.H / s.Hkv;
  const double scale = 1.0 / std::sqrt(double(s.D));
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int kvh = h / group;
      for (int t = 0; t < s.T; ++t) {
        const double* q = &qkv[(size_t(b) * s.T + t) * W + size_t(h) * s.D];
        std::vector<double> score(t + 1);
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = 0; j <= t; ++j) {
          const double* k = &qkv[(size_t(b) * s.T + j) * W + size_t(s.H + kvh) * s.D];
          double dot = 0;
          for (int d = 0; d < s.D; ++d) dot += q[d] * k[d];
          score[j] = dot * scale;
          mx = std::max(mx, score[j]);
        }
        double sum = 0;
        for (double& v : score) sum += (v = std::exp(v - mx));
        lse[(size_t(b) * s.H + h) * s.T + t] = mx + std::log(sum);
        double* o = &out[(size_t(b) * s.T + t) * HD + size_t(h) * s.D];
        for (int d = 0; d < s.D; ++d) o[d] = 0;
        for (int j = 0; j <= t; ++j) {
          const double* v = &qkv[(size_t(b) * s.T + j) * W + size_t(s.H + s.Hkv + kvh) * s.D];
          for (int d = 0; d < s.D; ++d) o[d] += score[j] / sum * v[d];
        }
      }
    }
}

inline double silu(double g) { return g / (1.0 + std::exp(-g)); }

inline void swiglu_forward(Vec& out, const Vec& gateup, int N, int F) {
  for (int n = 0; n < N; ++n)
    for (int f = 0; f < F; ++f)
      out[size_t(n) * F + f] = silu(gateup[size_t(n) * 2 * F + f]) * gateup[size_t(n) * 2 * F + F + f];
}

// Loss per row and grad_scale * (softmax - onehot); -100 rows give 0 and a zero gradient row.
inline double cross_entropy(Vec& losses, Vec& dlogits, const Vec& logits, const std::vector<int32_t>& targets,
                            int N, int V, double grad_scale) {
  double total = 0;
  for (int n = 0; n < N; ++n) {
    const double* x = &logits[size_t(n) * V];
    double* dx = &dlogits[size_t(n) * V];
    if (targets[n] == -100) {
      losses[n] = 0;
      for (int j = 0; j < V; ++j) dx[j] = 0;
      continue;
    }
    double mx = x[0];
    for (int j = 1; j < V; ++j) mx = std::max(mx, x[j]);
    double sum = 0;
    for (int j = 0; j < V; ++j) sum += std::exp(x[j] - mx);
    losses[n] = mx + std::log(sum) - x[targets[n]];
    total += losses[n];
    for (int j = 0; j < V; ++j) dx[j] = grad_scale * (std::exp(x[j] - mx) / sum - (j == targets[n] ? 1.0 : 0.0));
  }
  return total;
}

inline void embedding_forward(Vec& out, const std::vector<int32_t>& tokens, const Vec& table, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) out[size_t(n) * C + c] = table[size_t(tokens[n]) * C + c];
}

inline void embedding_backward(Vec& dtable, const Vec& dout, const std::vector<int32_t>& tokens, int N, int C) {
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) dtable[size_t(tokens[n]) * C + c] += dout[size_t(n) * C + c];
}

}  // namespace fm::kernels::naive
