#include "data/loader.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>

#include <fmt/format.h>

#include "data/hash.h"
#include "data/permutation.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"

namespace fm::data {

namespace {

void check_layout(const BatchLayout& layout, const SampleSource& source) {
  FM_CHECK(layout.micro_batch >= 1 && layout.grad_accum >= 1 && layout.dp_size >= 1, "bad batch layout");
  FM_CHECK(layout.dp_rank >= 0 && layout.dp_rank < layout.dp_size, "dp_rank outside [0, dp_size)");
  FM_CHECK(layout.seq_len == source.seq_len(), "the source was opened for another seq_len");
  FM_CHECK(source.size() > 0, "a loader needs a source with at least one sample");
}

[[noreturn]] void bad_token(const SampleSource& source, int64_t index, int pos, int32_t id, int64_t vocab_size) {
  if (id < 0)
    throw InputError(source.locate(index, pos), fmt::format("token id {} is negative", id),
                     "the file is corrupt or was written with another token width");
  throw InputError(source.locate(index, pos),
                   fmt::format("token id {} is outside the model's vocabulary (vocab_size {})", id, vocab_size),
                   "the data was tokenized with another tokenizer than the model's, or the model's vocab_size "
                   "is too small");
}

// The step whose global batch starts at run-global sample `first_sample`, for the rank of
// `layout`; `source_index` maps a global sample number to a source index.
template <typename IndexMap>
StepBatch read_step(const SampleSource& source, const BatchLayout& layout, int64_t first_sample,
                    const IndexMap& source_index, int64_t vocab_size) {
  const int T = layout.seq_len;
  const int64_t per_rank = int64_t{layout.micro_batch} * layout.grad_accum;
  const int64_t mine_begin = layout.dp_rank * per_rank, mine_end = mine_begin + per_rank;
  StepBatch step;
  step.micro_batches.resize(layout.grad_accum);
  for (auto& mb : step.micro_batches) {
    mb.B = layout.micro_batch;
    mb.T = T;
    mb.inputs.resize(static_cast<size_t>(mb.B) * T);
    mb.targets.resize(static_cast<size_t>(mb.B) * T);
    mb.samples.resize(mb.B);
  }
  std::vector<int32_t> tokens(T + 1);
  std::vector<uint8_t> mask(T + 1);
  for (int64_t j = 0; j < layout.global_batch(); ++j) {
    const int64_t k = first_sample + j;
    const int64_t index = source_index(k);
    if (j < mine_begin || j >= mine_end) {
      step.global_targets += source.num_targets(index);
      continue;
    }
    source.read(index, tokens.data(), mask.data());
    for (int t = 0; t <= T; ++t)
      if (tokens[t] < 0 || tokens[t] >= vocab_size) bad_token(source, index, t, tokens[t], vocab_size);
    MicroBatch& mb = step.micro_batches[(j - mine_begin) / layout.micro_batch];
    const int64_t row = (j - mine_begin) % layout.micro_batch;
    mb.samples[row] = k;
    int32_t* in = mb.inputs.data() + row * T;
    int32_t* tg = mb.targets.data() + row * T;
    int64_t count = 0;
    for (int t = 0; t < T; ++t) {
      in[t] = tokens[t];
      const bool is_target = mask[t + 1] != 0;
      tg[t] = is_target ? tokens[t + 1] : kIgnoreIndex;
      count += is_target;
    }
    mb.num_targets += count;
    step.global_targets += count;
  }
  return step;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// State

std::string loader_state_to_json(const LoaderState& s) {
  return fmt::format("{{\"consumed_steps\": {}, \"consumed_samples\": {}, \"seed\": {}}}", s.consumed_steps,
                     s.consumed_samples, s.seed);
}

LoaderState loader_state_from_json(std::string_view json, const std::string& where) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError())
    throw InputError(where, fmt::format("malformed loader state: {} at byte {}",
                                        rapidjson::GetParseError_En(doc.GetParseError()), doc.GetErrorOffset()));
  if (!doc.IsObject()) throw InputError(where, "loader state must be a JSON object");
  LoaderState s;
  auto get = [&](const char* key, auto& out) {
    auto it = doc.FindMember(key);
    if (it == doc.MemberEnd()) throw InputError(where, fmt::format("loader state lacks '{}'", key));
    if constexpr (std::is_same_v<std::decay_t<decltype(out)>, uint64_t>) {
      if (!it->value.IsUint64()) throw InputError(where, fmt::format("loader state '{}' must be an unsigned integer", key));
      out = it->value.GetUint64();
    } else {
      if (!it->value.IsInt64() || it->value.GetInt64() < 0)
        throw InputError(where, fmt::format("loader state '{}' must be a non-negative integer", key));
      out = it->value.GetInt64();
    }
  };
  get("consumed_steps", s.consumed_steps);
  get("consumed_samples", s.consumed_samples);
  get("seed", s.seed);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Loader

struct Loader::Job {
  int64_t first_sample = 0;
  StepBatch result;
  std::exception_ptr error;
  bool done = false;
};

Loader::Loader(std::shared_ptr<const SampleSource> train, BatchLayout layout, uint64_t seed, bool shuffle,
               int num_workers, int64_t vocab_size)
    : source_(std::move(train)),
      layout_(layout),
      seed_(seed),
      shuffle_(shuffle),
      vocab_size_(vocab_size),
      num_workers_(std::max(0, num_workers)),
      depth_(2 * static_cast<size_t>(std::max(0, num_workers))) {
  FM_CHECK(source_ != nullptr);
  check_layout(layout_, *source_);
  FM_CHECK(vocab_size_ > 0);
  for (int i = 0; i < num_workers_; ++i) workers_.emplace_back([this] { worker_loop(); });
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t Loader::source_index(int64_t k) const {
  if (!shuffle_) return k;
  const int64_t n = source_->size();
  const int64_t epoch = k / n;
  // A fresh permutation object per call is cheap (six keys) and keeps this function stateless.
  IndexPermutation perm(n, hash_combine(seed_, static_cast<uint64_t>(epoch)));
  return epoch * n + perm(k % n);
}

StepBatch Loader::compute(int64_t first_sample) const {
  return read_step(*source_, layout_, first_sample, [this](int64_t k) { return source_index(k); }, vocab_size_);
}

void Loader::worker_loop() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !unclaimed_.empty(); });
      if (stopping_) return;
      job = unclaimed_.front();
      unclaimed_.pop_front();
    }
    StepBatch result;
    std::exception_ptr error;
    try {
      result = compute(job->first_sample);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->result = std::move(result);
      job->error = error;
      job->done = true;
    }
    done_cv_.notify_all();
  }
}

void Loader::top_up_locked() {
  bool added = false;
  while (ahead_.size() < depth_) {
    auto job = std::make_shared<Job>();
    job->first_sample = prefetch_next_;
    prefetch_next_ += layout_.global_batch();
    ahead_.push_back(job);
    unclaimed_.push_back(job);
    added = true;
  }
  if (added) work_cv_.notify_all();
}

std::vector<MicroBatch> Loader::next_step() {
  StepBatch step;
  if (num_workers_ == 0) {
    step = compute(consumed_samples_);
  } else {
    std::unique_lock<std::mutex> lock(mu_);
    if (ahead_.empty()) prefetch_next_ = consumed_samples_;
    top_up_locked();
    std::shared_ptr<Job> job = ahead_.front();
    ahead_.pop_front();
    FM_CHECK(job->first_sample == consumed_samples_, "prefetch queue out of step");
    top_up_locked();
    done_cv_.wait(lock, [&] { return job->done; });
    if (job->error) {
      // The step stays unconsumed; a later call computes it (and fails) again.
      ahead_.clear();
      unclaimed_.clear();
      std::rethrow_exception(job->error);
    }
    step = std::move(job->result);
  }
  consumed_samples_ += layout_.global_batch();
  consumed_steps_ += 1;
  last_global_targets_ = step.global_targets;
  return std::move(step.micro_batches);
}

LoaderState Loader::state() const { return {consumed_steps_, consumed_samples_, seed_}; }

void Loader::restore(const LoaderState& state) {
  if (state.seed != seed_)
    throw InputError("loader state",
                     fmt::format("the checkpoint's data order was drawn with seed {}, this run uses seed {}",
                                 state.seed, seed_),
                     "resume with the seed the run started with");
  std::lock_guard<std::mutex> lock(mu_);
  // Jobs a worker already holds finish into objects nobody reads any more.
  ahead_.clear();
  unclaimed_.clear();
  consumed_steps_ = state.consumed_steps;
  consumed_samples_ = state.consumed_samples;
  prefetch_next_ = consumed_samples_;
  last_global_targets_ = 0;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

EvalLoader::EvalLoader(std::shared_ptr<const SampleSource> valid, BatchLayout layout, int eval_iters,
                       int64_t vocab_size)
    : source_(std::move(valid)), layout_(layout), eval_iters_(eval_iters), vocab_size_(vocab_size) {
  FM_CHECK(source_ != nullptr && eval_iters_ >= 0);
  check_layout(layout_, *source_);
  const int64_t wanted = layout_.global_batch() * eval_iters_;
  if (wanted > source_->size())
    log::warn("evaluation reads {} samples per evaluation but the validation data has {}; samples repeat", wanted,
              source_->size());
}

StepBatch EvalLoader::batch(int iter) const {
  FM_CHECK(iter >= 0 && iter < eval_iters_);
  return read_step(*source_, layout_, iter * layout_.global_batch(), [](int64_t k) { return k; }, vocab_size_);
}

}  // namespace fm::data
