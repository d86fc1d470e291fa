// The fp32 CpuOps entry points: against the double templates, bitwise determinism (run to run and
// across thread counts), the optimizer step against a scalar formula, conversions and memory.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "kernels/cpu/convert.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_ops.h"
#include "tests/kernels/test_util.h"

namespace cpu = fm::kernels::cpu;
using fm::kernels::AdamStep;
using fm::kernels::AttentionShape;
using fm::kernels::DType;
using fm::kernels::f32;
using fm::kernels::i32;
using fm::kernels::Ops;
using fm::kernels::View;
using namespace fm::kernels::testing;

namespace {

using FVec = std::vector<float>;

// One pass of a small transformer block's ops through an Ops object; every output is recorded so
// two runs can be compared bit for bit.
struct BlockRun {
  std::vector<FVec> outputs;
  std::vector<double> scalars;
};

BlockRun run_block(Ops& ops) {
  const AttentionShape s{3, 100, 4, 2, 16};  // T = 100: one full block of 64 and a ragged one
  const int N = s.B * s.T, C = 64, F = 96, V = 300;
  BlockRun r;
  const FVec x = to_float(random_vec(size_t(N) * C, 1));
  const FVec w = to_float(random_vec(C, 2, 0.5, 1.5));
  FVec h(x.size()), rstd(N);
  ops.rmsnorm_forward(f32(h.data()), f32(rstd.data()), f32(x.data()), f32(w.data()), N, C, 1e-5f);
  const FVec wqkv = to_float(random_vec(size_t(s.qkv_width()) * C, 3, -0.2, 0.2));
  FVec qkv(size_t(N) * s.qkv_width());
  ops.matmul_nt(f32(qkv.data()), f32(h.data()), f32(wqkv.data()), N, s.qkv_width(), C, false);
  FVec table(size_t(s.T) * s.D);
  fm::kernels::rope_table(table.data(), s.T, s.D, 10000.0, {});
  ops.rope_forward(f32(qkv.data()), f32(table.data()), s);
  FVec att(size_t(N) * s.H * s.D), lse(size_t(s.B) * s.H * s.T);
  ops.attention_forward(f32(att.data()), f32(lse.data()), f32(qkv.data()), s);
  const FVec datt = to_float(random_vec(att.size(), 4));
  FVec dqkv(qkv.size());
  ops.attention_backward(f32(dqkv.data()), f32(datt.data()), f32(qkv.data()), f32(att.data()), f32(lse.data()), s);
  ops.rope_backward(f32(dqkv.data()), f32(table.data()), s);
  FVec dwqkv(wqkv.size(), 0.0f), dh(h.size());
  ops.matmul_tn(f32(dwqkv.data()), f32(dqkv.data()), f32(h.data()), s.qkv_width(), C, N, true);
  ops.matmul_nn(f32(dh.data()), f32(dqkv.data()), f32(wqkv.data()), N, C, s.qkv_width(), false);
  FVec dx(x.size()), dw(C, 0.0f);
  ops.rmsnorm_backward(f32(dx.data()), f32(dw.data()), f32(dh.data()), f32(x.data()), f32(w.data()),
                       f32(rstd.data()), N, C, false);
  const FVec gu = to_float(random_vec(size_t(N) * 2 * F, 5, -3, 3));
  FVec act(size_t(N) * F), dgu(gu.size());
  ops.swiglu_forward(f32(act.data()), f32(gu.data()), N, F);
  const FVec dact = to_float(random_vec(act.size(), 6));
  ops.swiglu_backward(f32(dgu.data()), f32(dact.data()), f32(gu.data()), N, F);
  FVec logits = to_float(random_vec(size_t(N) * V, 7, -5, 5)), losses(N);
  std::vector<int32_t> targets = random_ints(N, 8, 0, V - 1);
  targets[7] = -100;
  r.scalars.push_back(ops.cross_entropy(f32(losses.data()), f32(logits.data()), f32(logits.data()),
                                        i32(targets.data()), N, V, 1.0f / N));
  const std::vector<int32_t> tokens = random_ints(N, 9, 0, 20);
  FVec dtable(size_t(21) * C, 0.0f);
  ops.embedding_backward(f32(dtable.data()), f32(dx.data()), i32(tokens.data()), N, C, 21);
  r.scalars.push_back(ops.sum_squares(f32(dqkv.data()), int64_t(dqkv.size())));
  r.outputs = {h, rstd, qkv, att, lse, dqkv, dwqkv, dh, dx, dw, act, dgu, logits, losses, dtable};
  return r;
}

bool same_bits(const FVec& a, const FVec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("CpuOps results are bitwise reproducible, run to run and across thread counts") {
  auto ops = fm::kernels::make_cpu_ops();
  auto one_thread = fm::kernels::make_cpu_ops(1);
  const BlockRun a = run_block(*ops), b = run_block(*ops), c = run_block(*one_thread);
  REQUIRE(a.outputs.size() == b.outputs.size());
  for (size_t k = 0; k < a.outputs.size(); ++k) {
    CAPTURE(k);
    CHECK(same_bits(a.outputs[k], b.outputs[k]));
    CHECK(same_bits(a.outputs[k], c.outputs[k]));
  }
  CHECK(a.scalars == b.scalars);
  CHECK(a.scalars == c.scalars);
}

TEST_CASE("fp32 CpuOps agree with the double templates") {
  auto ops = fm::kernels::make_cpu_ops();
  CHECK(std::string(ops->name()) == "cpu");
  const double tol = 2e-5;

  SUBCASE("attention forward and backward") {
    const AttentionShape s{2, 90, 8, 2, 32};
    const size_t N = size_t(s.B) * s.T;
    const Vec qkv = random_vec(N * s.qkv_width(), 30, -2, 2), dout = random_vec(N * s.H * s.D, 31);
    Vec out(N * s.H * s.D), lse(size_t(s.B) * s.H * s.T), dqkv(qkv.size());
    cpu::attention_forward(out.data(), lse.data(), qkv.data(), s);
    cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), s);
    const FVec qkvf = to_float(qkv), doutf = to_float(dout);
    FVec outf(out.size()), lsef(lse.size()), dqkvf(dqkv.size());
    ops->attention_forward(f32(outf.data()), f32(lsef.data()), f32(qkvf.data()), s);
    ops->attention_backward(f32(dqkvf.data()), f32(doutf.data()), f32(qkvf.data()), f32(outf.data()),
                            f32(lsef.data()), s);
    CHECK(max_rel_diff(to_double(outf), out) < tol);
    CHECK(max_rel_diff(to_double(lsef), lse) < tol);
    CHECK(max_rel_diff(to_double(dqkvf), dqkv) < tol);
  }
  SUBCASE("rmsnorm, swiglu, rope") {
    const int N = 40, C = 96;
    const Vec x = random_vec(size_t(N) * C, 32, -3, 3), w = random_vec(C, 33), g = random_vec(size_t(N) * C, 34);
    Vec y(x.size()), rstd(N), dx(x.size()), dw(C, 0.0);
    cpu::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
    cpu::rmsnorm_backward(dx.data(), dw.data(), g.data(), x.data(), w.data(), rstd.data(), N, C, false);
    const FVec xf = to_float(x), wf = to_float(w), gf = to_float(g);
    FVec yf(y.size()), rstdf(N), dxf(dx.size()), dwf(C, 0.0f);
    ops->rmsnorm_forward(f32(yf.data()), f32(rstdf.data()), f32(xf.data()), f32(wf.data()), N, C, 1e-5f);
    ops->rmsnorm_backward(f32(dxf.data()), f32(dwf.data()), f32(gf.data()), f32(xf.data()), f32(wf.data()),
                          f32(rstdf.data()), N, C, false);
    CHECK(max_rel_diff(to_double(yf), y) < tol);
    CHECK(max_rel_diff(to_double(dxf), dx) < tol);
    CHECK(max_rel_diff(to_double(dwf), dw) < tol);

    const int F = C / 2;
    Vec act(size_t(N) * F), dgu(x.size());
    cpu::swiglu_forward(act.data(), x.data(), N, F);
    cpu::swiglu_backward(dgu.data(), g.data(), x.data(), N, F);
    FVec actf(act.size()), dguf(dgu.size());
    ops->swiglu_forward(f32(actf.data()), f32(xf.data()), N, F);
    ops->swiglu_backward(f32(dguf.data()), f32(gf.data()), f32(xf.data()), N, F);
    CHECK(max_rel_diff(to_double(actf), act) < tol);
    CHECK(max_rel_diff(to_double(dguf), dgu) < tol);

    const AttentionShape s{2, 20, 2, 1, 8};
    FVec table(size_t(s.T) * s.D);
    fm::kernels::rope_table(table.data(), s.T, s.D, 10000.0, {});
    const Vec tabled = to_double(table);
    Vec q = random_vec(size_t(s.B) * s.T * s.qkv_width(), 35);
    FVec qf = to_float(q);
    cpu::rope_forward(q.data(), tabled.data(), s);
    ops->rope_forward(f32(qf.data()), f32(table.data()), s);
    CHECK(max_rel_diff(to_double(qf), q) < tol);
    cpu::rope_backward(q.data(), tabled.data(), s);
    ops->rope_backward(f32(qf.data()), f32(table.data()), s);
    CHECK(max_rel_diff(to_double(qf), q) < tol);
  }
  SUBCASE("cross_entropy and matmul") {
    const int N = 16, V = 5000;
    const Vec logits = random_vec(size_t(N) * V, 36, -10, 10);
    std::vector<int32_t> targets = random_ints(N, 37, 0, V - 1);
    targets[0] = -100;
    Vec losses(N), d(logits.size());
    const double total = cpu::cross_entropy(losses.data(), d.data(), logits.data(), targets.data(), N, V, 0.25);
    const FVec lf = to_float(logits);
    FVec lossesf(N), df(d.size());
    const double totalf = ops->cross_entropy(f32(lossesf.data()), f32(df.data()), f32(lf.data()),
                                             i32(targets.data()), N, V, 0.25f);
    CHECK(totalf == doctest::Approx(total).epsilon(tol));
    CHECK(max_rel_diff(to_double(lossesf), losses) < tol);
    CHECK(max_abs_diff(to_double(df), d) < 1e-7);

    const int M = 300, K = 200, O = 260;
    const Vec a = random_vec(size_t(M) * K, 38), b = random_vec(size_t(O) * K, 39);
    Vec y(size_t(M) * O);
    cpu::matmul_nt(y.data(), a.data(), b.data(), M, O, K, false);
    const FVec af = to_float(a), bf = to_float(b);
    FVec yf(y.size());
    ops->matmul_nt(f32(yf.data()), f32(af.data()), f32(bf.data()), M, O, K, false);
    CHECK(max_abs_diff(to_double(yf), y) < 1e-4);
  }
}

namespace {

// Adam / AdamW written out for one scalar, in double.
struct ScalarAdam {
  double p, m = 0, v = 0;
  void step(double g, const AdamStep& s) {
    if (s.adam_w_mode)
      p *= 1 - double(s.lr) * s.weight_decay;
    else
      g += double(s.weight_decay) * p;
    m = s.beta1 * m + (1 - double(s.beta1)) * g;
    v = s.beta2 * v + (1 - double(s.beta2)) * g * g;
    const double bc1 = 1 - std::pow(double(s.beta1), double(s.step));
    const double bc2 = 1 - std::pow(double(s.beta2), double(s.step));
    p -= s.lr / bc1 * m / (std::sqrt(v) / std::sqrt(bc2) + s.eps);
  }
};

}  // namespace

TEST_CASE("adam_update follows the Adam / AdamW formula over several steps") {
  auto ops = fm::kernels::make_cpu_ops();
  for (bool adamw : {true, false}) {
    CAPTURE(adamw);
    const int64_t n = 40000;  // several blocks
    const Vec p0 = random_vec(n, 40, -2, 2);
    FVec master = to_float(p0), m(n, 0.0f), v(n, 0.0f), grad(n);
    std::vector<uint16_t> bf16(n);
    std::vector<ScalarAdam> ref;
    for (float x : master) ref.push_back({double(x)});
    AdamStep s;
    s.lr = 1e-2f;
    s.beta1 = 0.9f;
    s.beta2 = 0.95f;
    s.eps = 1e-8f;
    s.weight_decay = 0.1f;
    s.adam_w_mode = adamw;
    for (int step = 1; step <= 5; ++step) {
      s.step = step;
      const FVec g = to_float(random_vec(n, 100 + step, -1, 1));
      grad = g;
      ops->adam_update(f32(master.data()), f32(grad.data()), f32(m.data()), f32(v.data()),
                       View{bf16.data(), DType::BF16}, n, s);
      CHECK(grad == g);  // the gradient is an input only, in both modes
      for (int64_t i = 0; i < n; ++i) ref[i].step(g[i], s);
    }
    double worst_p = 0, worst_m = 0, worst_v = 0;
    for (int64_t i = 0; i < n; ++i) {
      worst_p = std::max(worst_p, std::abs(master[i] - ref[i].p) / std::max(1.0, std::abs(ref[i].p)));
      worst_m = std::max(worst_m, std::abs(m[i] - ref[i].m));
      worst_v = std::max(worst_v, std::abs(v[i] - ref[i].v));
      REQUIRE(bf16[i] == cpu::float_to_bf16(master[i]));
    }
    CHECK(worst_p < 1e-6);
    CHECK(worst_m < 1e-6);
    CHECK(worst_v < 1e-6);
  }
}

TEST_CASE("weight decay modes differ as Adam and AdamW do") {
  // One step from m = v = 0 with g = 0: AdamW shrinks p by lr*wd; Adam's L2 term moves p by the
  // normalised step lr * sign(p) (since m/sqrt(v) = sign(g) after bias correction).
  auto ops = fm::kernels::make_cpu_ops();
  AdamStep s;
  s.lr = 0.01f;
  s.weight_decay = 0.5f;
  s.step = 1;
  for (bool adamw : {true, false}) {
    s.adam_w_mode = adamw;
    FVec p = {2.0f, -4.0f}, g = {0.0f, 0.0f}, m = {0.0f, 0.0f}, v = {0.0f, 0.0f};
    ops->adam_update(f32(p.data()), f32(g.data()), f32(m.data()), f32(v.data()), View{}, 2, s);
    if (adamw) {
      CHECK(p[0] == doctest::Approx(2.0 * (1 - 0.005)));
      CHECK(p[1] == doctest::Approx(-4.0 * (1 - 0.005)));
    } else {
      CHECK(p[0] == doctest::Approx(2.0 - 0.01).epsilon(1e-6));
      CHECK(p[1] == doctest::Approx(-4.0 + 0.01).epsilon(1e-6));
    }
  }
}

TEST_CASE("copy converts between f32, bf16 and f16; alloc is aligned and zeroed; zero clears") {
  auto ops = fm::kernels::make_cpu_ops();
  const FVec x = {1.0f, -2.5f, 3.14159265f, 1e-3f, 65504.0f, 0.0f, 1.00390625f, 1.01171875f};
  std::vector<uint16_t> bf(x.size()), h(x.size()), h2(x.size());
  FVec back(x.size());
  ops->copy(View{bf.data(), DType::BF16}, f32(x.data()), int64_t(x.size()));
  ops->copy(f32(back.data()), View{bf.data(), DType::BF16}, int64_t(x.size()));
  for (size_t k = 0; k < x.size(); ++k) CHECK(back[k] == doctest::Approx(x[k]).epsilon(1.0 / 128));
  CHECK(bf[0] == 0x3f80);
  CHECK(bf[6] == 0x3f80);  // 1 + 2^-8 is a tie: rounds to even (1.0)
  CHECK(bf[7] == 0x3f82);  // 1 + 3*2^-8 is a tie: rounds to even (1 + 2^-6)
  ops->copy(View{h.data(), DType::F16}, f32(x.data()), int64_t(x.size()));
  ops->copy(f32(back.data()), View{h.data(), DType::F16}, int64_t(x.size()));
  for (size_t k = 0; k < x.size(); ++k) CHECK(back[k] == doctest::Approx(x[k]).epsilon(1.0 / 1024));
  CHECK(h[0] == 0x3c00);
  ops->copy(View{h2.data(), DType::F16}, View{bf.data(), DType::BF16}, int64_t(x.size()));
  CHECK(h2[0] == 0x3c00);

  const size_t bytes = 1000003;
  auto* p = static_cast<unsigned char*>(ops->alloc(bytes));
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  bool zeroed = true;
  for (size_t k = 0; k < bytes; ++k) zeroed = zeroed && p[k] == 0;
  CHECK(zeroed);
  std::memset(p, 0xab, bytes);
  ops->zero(View{p, DType::BF16}, int64_t(bytes / 2));
  CHECK(p[bytes / 2 * 2 - 1] == 0);
  CHECK(p[bytes - 1] == 0xab);
  FVec src(1000, 3.0f), dst(1000, 0.0f);
  ops->copy(f32(dst.data()), f32(src.data()), 1000);
  CHECK(dst == src);
  ops->release(p);
}
