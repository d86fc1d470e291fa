#include "zero/adam.h"

#include "runtime/base/error.h"

namespace fm::zero {

namespace {

kernels::View offset_view(kernels::View v, int64_t elements) {
  if (!v) return v;
  return {static_cast<char*>(v.ptr) + elements * static_cast<int64_t>(kernels::dtype_size(v.dtype)), v.dtype};
}

}  // namespace

AdamOptimizer::AdamOptimizer(kernels::Ops& ops, const AdamConfig& config, ParamRange range)
    : ops_(ops), config_(config), range_(std::move(range)) {
  const int64_t n = range_.size();
  if (n > 0) {
    const size_t bytes = static_cast<size_t>(n) * sizeof(float);
    m_ = static_cast<float*>(ops_.alloc(bytes));
    v_ = static_cast<float*>(ops_.alloc(bytes));
  }
}

AdamOptimizer::~AdamOptimizer() {
  if (m_) ops_.release(m_);
  if (v_) ops_.release(v_);
}

void AdamOptimizer::step(kernels::View master, kernels::View grad, kernels::View param_out) {
  FM_CHECK(master.dtype == kernels::DType::F32 && grad.dtype == kernels::DType::F32,
           "the optimizer updates fp32 masters from fp32 gradients");
  ++step_count_;
  kernels::AdamStep s;
  s.lr = config_.lr;
  s.beta1 = config_.beta1;
  s.beta2 = config_.beta2;
  s.eps = config_.eps;
  s.adam_w_mode = config_.adam_w_mode;
  s.step = step_count_;
  for (const Segment& seg : range_.update) {
    const int64_t at = seg.begin - range_.begin;
    s.weight_decay = seg.decay ? config_.weight_decay : 0.0;
    ops_.adam_update(offset_view(master, at), offset_view(grad, at), kernels::f32(m_ + at),
                     kernels::f32(v_ + at), offset_view(param_out, at), seg.size(), s);
  }
}

}  // namespace fm::zero
