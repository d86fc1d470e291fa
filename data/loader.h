// The training loader: deterministic batches addressed by global step.
//
// A run consumes the train source as a sequence of global samples k = 0, 1, 2, ... . Sample k is
// source index e*N + perm_e(k mod N), with N = source size, e = k / N the epoch, and perm_e a
// permutation seeded by (seed, e) when shuffling (identity without: token files are read in
// order). Step s takes the global batch of GB = micro_batch * grad_accum * dp_size consecutive
// samples starting at consumed_samples. Within it, position j goes to
//   dp rank     j / (micro_batch * grad_accum)
//   micro-batch (j mod (micro_batch * grad_accum)) / micro_batch
//   row         j mod micro_batch
// so the global batch of a step does not depend on dp_size, and the first and last pipeline
// stages of a replica (same dp rank) receive the same micro-batches.
//
// The loss is the mean over all non-ignored targets of the global batch, so every rank also gets
// that count for the step (it reads the masks of the other ranks' samples; no communication).
// Background workers prefetch upcoming steps; results do not depend on their number. Token ids
// outside [0, vocab_size) are an InputError naming the file and byte offset, raised by
// next_step() before the batch reaches the model.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "data/sample_source.h"

namespace fm::data {

inline constexpr int32_t kIgnoreIndex = -100;

struct BatchLayout {
  int micro_batch = 1;
  int grad_accum = 1;
  int dp_size = 1;
  int dp_rank = 0;
  int seq_len = 0;
  int64_t global_batch() const { return int64_t{micro_batch} * grad_accum * dp_size; }
};

struct MicroBatch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs;   // (B,T)
  std::vector<int32_t> targets;  // (B,T); kIgnoreIndex where the target mask is 0
  int64_t num_targets = 0;       // non-ignored targets of this micro-batch
  std::vector<int64_t> samples;  // (B) the global sample number k of each row
};

struct StepBatch {
  std::vector<MicroBatch> micro_batches;  // this rank's grad_accum micro-batches, in order
  int64_t global_targets = 0;             // non-ignored targets of the whole global batch
};

struct LoaderState {
  int64_t consumed_steps = 0;
  int64_t consumed_samples = 0;  // the next step starts at this global sample
  uint64_t seed = 0;
};
std::string loader_state_to_json(const LoaderState& state);
// `where` names the file the text came from, for the InputError of a malformed state.
LoaderState loader_state_from_json(std::string_view json, const std::string& where);

class Loader {
 public:
  Loader(std::shared_ptr<const SampleSource> train, BatchLayout layout, uint64_t seed, bool shuffle,
         int num_workers, int64_t vocab_size);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  std::vector<MicroBatch> next_step();
  // Non-ignored targets of the whole global batch of the last next_step().
  int64_t step_global_targets() const { return last_global_targets_; }
  LoaderState state() const;
  // Continues exactly after the step the state was saved at. A state saved with another seed is
  // an InputError; a different dp layout or global batch size continues at the same sample.
  void restore(const LoaderState& state);

  const BatchLayout& layout() const { return layout_; }
  const SampleSource& source() const { return *source_; }
  // Source index of run-global sample k.
  int64_t source_index(int64_t k) const;

 private:
  struct Job;
  StepBatch compute(int64_t first_sample) const;
  void worker_loop();
  void top_up_locked();

  std::shared_ptr<const SampleSource> source_;
  BatchLayout layout_;
  uint64_t seed_;
  bool shuffle_;
  int64_t vocab_size_;
  int64_t consumed_steps_ = 0, consumed_samples_ = 0;
  int64_t last_global_targets_ = 0;

  // Prefetching: `ahead_` holds the upcoming steps in order, `unclaimed_` those no worker took yet.
  int num_workers_;
  size_t depth_;
  int64_t prefetch_next_ = 0;  // first sample of the next step to enqueue
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<std::shared_ptr<Job>> ahead_, unclaimed_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// Evaluation batches: eval_iters global batches of the same layout over the validation source,
// read in order from its start (no shuffling), identical at every evaluation so validation losses
// are comparable across steps.
class EvalLoader {
 public:
  EvalLoader(std::shared_ptr<const SampleSource> valid, BatchLayout layout, int eval_iters, int64_t vocab_size);
  int eval_iters() const { return eval_iters_; }
  // This rank's micro-batches of evaluation batch `iter` (0 <= iter < eval_iters) and the global
  // target count of that batch.
  StepBatch batch(int iter) const;
  const SampleSource& source() const { return *source_; }

 private:
  std::shared_ptr<const SampleSource> source_;
  BatchLayout layout_;
  int eval_iters_;
  int64_t vocab_size_;
};

}  // namespace fm::data
