#include "zero/zero_optimizer.h"

#include <algorithm>
#include <unordered_map>

#include "runtime/base/error.h"
#include "zero/clip.h"

namespace fm::zero {

using kernels::f32;
using kernels::View;

namespace {
constexpr comm::DType kF32 = comm::DType::F32;

bool is_tied_across_stages(const model::ParamInfo& p, const comm::CommPtr& tied) {
  return tied && !p.tied_key.empty();
}
}  // namespace

// Stage 2: gradient chunks go into one bucket that is reduced over the data-parallel group when
// full (and after each backward); each rank keeps the part inside its partition.
class ZeroOptimizer::BucketSink final : public model::GradSink {
 public:
  BucketSink(ZeroOptimizer& z, int64_t capacity) : z_(z), capacity_(capacity) {
    bucket_ = static_cast<float*>(z_.ops_.alloc(size_t(capacity_) * sizeof(float)));
    for (const model::ParamInfo& p : z_.stage_.layout().params)
      if (is_tied_across_stages(p, z_.tied_))
        tied_[p.offset] = static_cast<float*>(z_.ops_.alloc(size_t(p.numel()) * sizeof(float)));
  }
  ~BucketSink() override {
    z_.ops_.release(bucket_);
    for (auto& [offset, buf] : tied_) z_.ops_.release(buf);
  }

  int64_t chunk_rows(const model::ParamInfo& p) override {
    if (tied_.count(p.offset)) return p.rows;
    return std::max<int64_t>(1, capacity_ / p.cols);
  }

  float* acquire(const model::ParamInfo& p, int64_t r0, int64_t r1) override {
    if (auto it = tied_.find(p.offset); it != tied_.end()) return it->second + r0 * p.cols;
    const int64_t n = (r1 - r0) * p.cols;
    FM_CHECK(n <= capacity_, "gradient chunk larger than the bucket");
    if (used_ + n > capacity_) flush();
    entries_.push_back({p.offset + r0 * p.cols, n, used_});
    float* at = bucket_ + used_;
    z_.ops_.zero(f32(at), n);
    used_ += n;
    return at;
  }
  void release(const model::ParamInfo&, int64_t, int64_t) override {}

  // All-reduces the bucket and adds this rank's part to its partition gradients.
  void flush() {
    if (used_ == 0) return;
    z_.dp_->all_reduce(bucket_, size_t(used_), kF32, comm::ReduceOp::Sum);
    const int64_t pb = z_.part_.begin(z_.dp_rank_), pe = z_.part_.end(z_.dp_rank_);
    for (const Entry& e : entries_) {
      const int64_t lo = std::max(e.begin, pb), hi = std::min(e.begin + e.size, pe);
      if (lo < hi) z_.ops_.accumulate(f32(z_.part_grads_ + (lo - pb)), f32(bucket_ + e.at + (lo - e.begin)), hi - lo);
    }
    entries_.clear();
    used_ = 0;
  }

  void zero_tied() {
    for (const model::ParamInfo& p : z_.stage_.layout().params)
      if (auto it = tied_.find(p.offset); it != tied_.end()) z_.ops_.zero(f32(it->second), p.numel());
  }
  // Sums the tied gradients over the tied group (ReduceTiedGrads).
  void reduce_tied() {
    for (const model::ParamInfo& p : z_.stage_.layout().params)
      if (auto it = tied_.find(p.offset); it != tied_.end())
        z_.tied_->all_reduce(it->second, size_t(p.numel()), kF32, comm::ReduceOp::Sum);
  }
  // Data-parallel reduction of the tied gradients into the partition (ReduceGrads).
  void reduce_tied_into_partition() {
    for (const model::ParamInfo& p : z_.stage_.layout().params) {
      auto it = tied_.find(p.offset);
      if (it == tied_.end()) continue;
      for (int64_t r0 = 0; r0 < p.rows; r0 += chunk_rows_for_transport(p)) {
        const int64_t r1 = std::min(p.rows, r0 + chunk_rows_for_transport(p));
        float* dst = acquire_transport(p, r0, r1);
        z_.ops_.copy(f32(dst), f32(it->second + r0 * p.cols), (r1 - r0) * p.cols);
      }
    }
    flush();
  }

  int64_t bytes() const {
    int64_t n = capacity_;
    for (const model::ParamInfo& p : z_.stage_.layout().params)
      if (tied_.count(p.offset)) n += p.numel();
    return n * int64_t(sizeof(float));
  }

 private:
  struct Entry {
    int64_t begin, size, at;  // flat range and its place in the bucket
  };
  int64_t chunk_rows_for_transport(const model::ParamInfo& p) const { return std::max<int64_t>(1, capacity_ / p.cols); }
  float* acquire_transport(const model::ParamInfo& p, int64_t r0, int64_t r1) {
    const int64_t n = (r1 - r0) * p.cols;
    if (used_ + n > capacity_) flush();
    entries_.push_back({p.offset + r0 * p.cols, n, used_});
    float* at = bucket_ + used_;
    used_ += n;
    return at;
  }

  ZeroOptimizer& z_;
  int64_t capacity_;
  float* bucket_ = nullptr;
  int64_t used_ = 0;
  std::vector<Entry> entries_;
  std::unordered_map<int64_t, float*> tied_;  // by flat offset
};

int64_t ZeroOptimizer::buffer_elements(int64_t numel, int dp) { return make_zero_partitioning(numel, dp).padded_numel; }

ZeroOptimizer::ZeroOptimizer(model::Stage& stage, const AdamConfig& adam, const ZeroSettings& settings,
                             comm::CommPtr dp_group, comm::CommPtr tied_group)
    : stage_(stage), ops_(stage.ops()), settings_(settings), dp_(std::move(dp_group)), tied_(std::move(tied_group)) {
  FM_CHECK(settings_.stage >= 0 && settings_.stage <= 2, "ZeRO stage");
  dp_rank_ = dp_->rank();
  dp_size_ = dp_->size();
  const model::ParamLayout& layout = stage_.layout();
  part_ = make_zero_partitioning(layout.total, dp_size_);
  FM_CHECK(stage_.buffer_elements() >= part_.padded_numel, "the stage buffer is not padded for ZeRO");
  if (settings_.stage == 0) range_ = make_param_range(layout, 0, layout.total);
  else range_ = make_param_range(layout, part_.begin(dp_rank_), part_.end(dp_rank_));
  adam_ = std::make_unique<AdamOptimizer>(ops_, adam, range_);

  if (settings_.stage >= 1) {
    // One round of the reduce-scatter (stage 1) or the all-gather carries at most a bucket.
    const int64_t rs = std::min(part_.partition_numel, std::max<int64_t>(1, settings_.reduce_bucket_size / dp_size_));
    int64_t ag = 0;
    for (const GatherShard& s : allgather_shards(part_, settings_.allgather_bucket_size)) ag = std::max(ag, s.count);
    staging_elements_ = std::max(settings_.stage == 1 ? rs : 0, ag) * dp_size_;
    staging_ = static_cast<float*>(ops_.alloc(size_t(staging_elements_) * sizeof(float)));
  }
  if (settings_.stage == 2) {
    FM_CHECK(!stage_.grads(), "ZeRO-2 stages keep no full gradient buffer");
    part_grads_ = static_cast<float*>(ops_.alloc(size_t(part_.partition_numel) * sizeof(float)));
    // The bucket holds at least one row of the widest weight and one whole norm vector.
    int64_t floor = 1;
    for (const model::ParamInfo& p : layout.params) floor = std::max(floor, p.cols == 1 ? p.rows : p.cols);
    const int64_t capacity = std::clamp<int64_t>(settings_.reduce_bucket_size, floor, std::max(floor, layout.total));
    sink_ = std::make_unique<BucketSink>(*this, capacity);
    stage_.set_grad_sink(sink_.get());
  }
}

ZeroOptimizer::~ZeroOptimizer() {
  if (sink_) stage_.set_grad_sink(nullptr);
  sink_.reset();
  if (part_grads_) ops_.release(part_grads_);
  if (staging_) ops_.release(staging_);
}

void ZeroOptimizer::begin_step() {
  if (settings_.stage < 2) {
    stage_.zero_grads();
  } else {
    ops_.zero(f32(part_grads_), part_.partition_numel);
    sink_->zero_tied();
  }
}

void ZeroOptimizer::after_backward() {
  if (sink_) sink_->flush();
}

void ZeroOptimizer::reduce_tied_grads() {
  if (!tied_) return;
  if (sink_) {
    sink_->reduce_tied();
    return;
  }
  for (const model::ParamInfo& p : stage_.layout().params)
    if (!p.tied_key.empty()) tied_->all_reduce(stage_.grads() + p.offset, size_t(p.numel()), kF32, comm::ReduceOp::Sum);
}

void ZeroOptimizer::reduce_grads() {
  float* grads = stage_.grads();
  switch (settings_.stage) {
    case 0:
      for (const Bucket& b : reduce_buckets(stage_.layout(), settings_.reduce_bucket_size))
        dp_->all_reduce(grads + b.begin, size_t(b.size()), kF32, comm::ReduceOp::Sum);
      break;
    case 1: {
      // Round k reduces elements [off, off+c) of every partition: pack them rank by rank, and
      // the reduce-scatter leaves this rank's sum in place in its own partition.
      const int64_t P = part_.partition_numel;
      const int64_t c_max = staging_elements_ / dp_size_;
      for (int64_t off = 0; off < P; off += c_max) {
        const int64_t c = std::min(c_max, P - off);
        for (int r = 0; r < dp_size_; ++r) ops_.copy(f32(staging_ + r * c), f32(grads + part_.begin(r) + off), c);
        dp_->reduce_scatter(staging_, grads + part_.begin(dp_rank_) + off, size_t(c), kF32, comm::ReduceOp::Sum);
      }
      break;
    }
    case 2:
      sink_->reduce_tied_into_partition();
      break;
  }
}

kernels::View ZeroOptimizer::range_grads() const {
  if (settings_.stage == 2) return f32(part_grads_);
  return f32(stage_.grads() + range_.begin);
}

double ZeroOptimizer::local_grad_sum_squares() {
  if (settings_.stage == 0 && dp_rank_ != 0) return 0.0;  // every data-parallel rank holds the same sum
  return grad_sum_squares(ops_, range_, range_grads());
}

void ZeroOptimizer::step(double clip, double lr, double beta1, double beta2) {
  const View g = range_grads();
  if (clip < 1.0) ops_.scale(g, static_cast<float>(clip), range_.size());
  adam_->set_lr(lr);
  adam_->set_betas(beta1, beta2);
  adam_->step(f32(stage_.params() + range_.begin), g);
  if (settings_.stage >= 1) all_gather_params();
}

void ZeroOptimizer::all_gather_params() {
  float* params = stage_.params();
  for (const GatherShard& s : allgather_shards(part_, settings_.allgather_bucket_size)) {
    dp_->all_gather(params + part_.begin(dp_rank_) + s.offset, staging_, size_t(s.count), kF32);
    for (int r = 0; r < dp_size_; ++r)
      if (r != dp_rank_) ops_.copy(f32(params + part_.begin(r) + s.offset), f32(staging_ + r * s.count), s.count);
  }
}

ZeroFootprint ZeroOptimizer::footprint() const {
  ZeroFootprint f;
  f.params = stage_.buffer_elements() * int64_t(sizeof(float));
  if (settings_.stage < 2) f.grads = stage_.buffer_elements() * int64_t(sizeof(float));
  else f.grads = part_.partition_numel * int64_t(sizeof(float)) + sink_->bytes();
  f.optimizer_state = 2 * adam_->state_numel() * int64_t(sizeof(float));
  return f;
}

}  // namespace fm::zero
