// The loader: determinism, the dp layout rule, global target counts, exact resume, worker count
// independence, vocabulary errors, evaluation batches.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "data/loader.h"
#include "data/token_file.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::expect_input_error;
using fm::data::testing::TempDir;

namespace {

// A token file of n tokens (ids i % 200, mask dropping every 5th token), T = 8.
std::shared_ptr<const SampleSource> masked_source(const TempDir& dir, int64_t n = 8 * 37 + 1, int T = 8) {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<int32_t>(i % 200)), mask.push_back(i % 5 != 0);
  const std::string path = dir / "data.tokens";
  write_token_file(path, ids, &mask);
  auto f = TokenFile::open(path);
  return std::make_shared<TokenFileSource>(f, T, 0, count_token_windows(*f, T));
}

BatchLayout layout(int mb, int gas, int dp, int rank, int T = 8) { return {mb, gas, dp, rank, T}; }

// The step's samples of one rank, in micro-batch and row order.
std::vector<int64_t> sample_ids(const std::vector<MicroBatch>& mbs) {
  std::vector<int64_t> out;
  for (const auto& mb : mbs) out.insert(out.end(), mb.samples.begin(), mb.samples.end());
  return out;
}

std::vector<int32_t> inputs(const std::vector<MicroBatch>& mbs) {
  std::vector<int32_t> out;
  for (const auto& mb : mbs) out.insert(out.end(), mb.inputs.begin(), mb.inputs.end());
  return out;
}

std::vector<int32_t> targets(const std::vector<MicroBatch>& mbs) {
  std::vector<int32_t> out;
  for (const auto& mb : mbs) out.insert(out.end(), mb.targets.begin(), mb.targets.end());
  return out;
}

}  // namespace

TEST_CASE("loader without shuffling reads the token file in order, labels -100 where masked") {
  TempDir dir;
  auto src = masked_source(dir);
  Loader loader(src, layout(2, 2, 1, 0), 1, /*shuffle=*/false, 0, 256);
  for (int step = 0; step < 3; ++step) {
    auto mbs = loader.next_step();
    REQUIRE(mbs.size() == 2);
    int64_t global = 0;
    for (int i = 0; i < 2; ++i) {
      const MicroBatch& mb = mbs[i];
      CHECK(mb.B == 2);
      CHECK(mb.T == 8);
      int64_t count = 0;
      for (int b = 0; b < 2; ++b) {
        const int64_t k = step * 4 + i * 2 + b;
        CHECK(mb.samples[b] == k);
        for (int t = 0; t < 8; ++t) {
          const int64_t tok = k * 8 + t;  // window k starts at token k*T
          CHECK(mb.inputs[b * 8 + t] == tok % 200);
          const bool target = (tok + 1) % 5 != 0;
          CHECK(mb.targets[b * 8 + t] == (target ? (tok + 1) % 200 : kIgnoreIndex));
          count += target;
        }
      }
      CHECK(mb.num_targets == count);
      global += count;
    }
    CHECK(loader.step_global_targets() == global);
  }
  CHECK(loader.state().consumed_steps == 3);
  CHECK(loader.state().consumed_samples == 12);
}

TEST_CASE("same seed, same batches; another seed, another order; each epoch a permutation") {
  TempDir dir;
  auto src = masked_source(dir);
  Loader a(src, layout(2, 3, 1, 0), 42, true, 0, 256), b(src, layout(2, 3, 1, 0), 42, true, 0, 256),
      c(src, layout(2, 3, 1, 0), 43, true, 0, 256);
  bool differs = false;
  for (int s = 0; s < 10; ++s) {
    auto x = a.next_step(), y = b.next_step(), z = c.next_step();
    CHECK(inputs(x) == inputs(y));
    CHECK(targets(x) == targets(y));
    differs |= inputs(x) != inputs(z);
  }
  CHECK(differs);

  const int64_t n = src->size();
  std::set<int64_t> epoch0, epoch1;
  bool epochs_differ = false;
  for (int64_t k = 0; k < n; ++k) {
    epoch0.insert(a.source_index(k));
    epoch1.insert(a.source_index(n + k) - n);
    epochs_differ |= a.source_index(k) != a.source_index(n + k) - n;
  }
  CHECK(static_cast<int64_t>(epoch0.size()) == n);
  CHECK(*epoch0.rbegin() == n - 1);
  CHECK(static_cast<int64_t>(epoch1.size()) == n);
  CHECK(epochs_differ);
}

TEST_CASE("dp=1, dp=2 and dp=4 see the same global batches in the documented order") {
  TempDir dir;
  auto src = masked_source(dir);
  // Global batch 8 in three layouts.
  Loader one(src, layout(2, 4, 1, 0), 9, true, 0, 256);
  std::vector<std::unique_ptr<Loader>> two, four;
  for (int r = 0; r < 2; ++r) two.push_back(std::make_unique<Loader>(src, layout(2, 2, 2, r), 9, true, 0, 256));
  for (int r = 0; r < 4; ++r) four.push_back(std::make_unique<Loader>(src, layout(1, 2, 4, r), 9, true, 0, 256));
  for (int step = 0; step < 12; ++step) {  // crosses epochs (37 samples)
    auto ref = one.next_step();
    std::vector<int64_t> expect_ids(8);
    for (int j = 0; j < 8; ++j) expect_ids[j] = step * 8 + j;
    CHECK(sample_ids(ref) == expect_ids);
    for (auto* ranks : {&two, &four}) {
      // Rank after rank, micro-batch after micro-batch: the documented global order.
      std::vector<MicroBatch> joined;
      int64_t local_sum = 0;
      for (auto& l : *ranks) {
        auto mbs = l->next_step();
        for (auto& mb : mbs) local_sum += mb.num_targets, joined.push_back(mb);
        CHECK(l->step_global_targets() == one.step_global_targets());
      }
      CHECK(sample_ids(joined) == expect_ids);
      CHECK(inputs(joined) == inputs(ref));
      CHECK(targets(joined) == targets(ref));
      CHECK(local_sum == one.step_global_targets());
    }
  }
}

TEST_CASE("stop and resume from a saved state sees exactly the uninterrupted batches") {
  TempDir dir;
  auto src = masked_source(dir);
  for (int workers : {0, 2}) {
    CAPTURE(workers);
    Loader full(src, layout(3, 2, 2, 1), 5, true, workers, 256);
    std::vector<std::vector<int32_t>> expected_in, expected_tg;
    std::vector<int64_t> expected_global;
    for (int s = 0; s < 15; ++s) {
      auto mbs = full.next_step();
      expected_in.push_back(inputs(mbs));
      expected_tg.push_back(targets(mbs));
      expected_global.push_back(full.step_global_targets());
    }
    std::string saved;
    {
      Loader first(src, layout(3, 2, 2, 1), 5, true, workers, 256);
      for (int s = 0; s < 6; ++s) CHECK(inputs(first.next_step()) == expected_in[s]);
      saved = loader_state_to_json(first.state());
    }  // destroyed with prefetched steps in flight
    Loader resumed(src, layout(3, 2, 2, 1), 5, true, workers, 256);
    resumed.next_step();  // a step read before the checkpoint is restored is forgotten
    resumed.restore(loader_state_from_json(saved, "state.json"));
    CHECK(resumed.state().consumed_steps == 6);
    for (int s = 6; s < 15; ++s) {
      auto mbs = resumed.next_step();
      CHECK(inputs(mbs) == expected_in[s]);
      CHECK(targets(mbs) == expected_tg[s]);
      CHECK(resumed.step_global_targets() == expected_global[s]);
    }
  }
}

TEST_CASE("resuming with another dp layout continues at the same global sample") {
  TempDir dir;
  auto src = masked_source(dir);
  Loader two_rank0(src, layout(2, 2, 2, 0), 3, true, 0, 256);
  for (int s = 0; s < 4; ++s) two_rank0.next_step();
  Loader one(src, layout(2, 4, 1, 0), 3, true, 0, 256);
  one.restore(two_rank0.state());
  auto ids = sample_ids(one.next_step());
  CHECK(ids.front() == 32);
  CHECK(ids.back() == 39);
}

TEST_CASE("the number of workers does not change the batches") {
  TempDir dir;
  auto src = masked_source(dir);
  Loader l0(src, layout(2, 3, 2, 0), 77, true, 0, 256), l1(src, layout(2, 3, 2, 0), 77, true, 1, 256),
      l3(src, layout(2, 3, 2, 0), 77, true, 3, 256);
  for (int s = 0; s < 20; ++s) {
    auto a = l0.next_step(), b = l1.next_step(), c = l3.next_step();
    CHECK(inputs(a) == inputs(b));
    CHECK(inputs(a) == inputs(c));
    CHECK(targets(a) == targets(c));
    CHECK(l0.step_global_targets() == l3.step_global_targets());
  }
}

TEST_CASE("a token id >= vocab_size is an InputError naming the file and byte offset") {
  TempDir dir;
  std::vector<int32_t> ids(8 * 10 + 1, 3);
  ids[8 * 6 + 2] = 300;  // in window 6 (and not in window 5: windows share only their edge token)
  const std::string path = dir / "v.tokens";
  write_token_file(path, ids);
  auto f = TokenFile::open(path);
  auto src = std::make_shared<TokenFileSource>(f, 8, 0, 10);
  for (int workers : {0, 2}) {
    Loader loader(src, layout(2, 1, 1, 0), 1, false, workers, 256);
    for (int s = 0; s < 3; ++s) loader.next_step();  // windows 0..5 are fine
    for (int attempt = 0; attempt < 2; ++attempt) {  // the failed step is not consumed
      auto e = expect_input_error([&] { loader.next_step(); });
      CHECK(e.where() == path + ":" + std::to_string(24 + 4 * (8 * 6 + 2)));
      CHECK(std::string(e.what()).find("token id 300 is outside the model's vocabulary (vocab_size 256)") !=
            std::string::npos);
      CHECK(loader.state().consumed_steps == 3);
    }
  }
  // The rank that does not read the sample does not raise.
  Loader other(src, layout(1, 1, 2, 1), 1, false, 0, 256);
  for (int s = 0; s < 3; ++s) other.next_step();
  CHECK_NOTHROW(other.next_step());  // samples 6 (rank 0) and 7 (rank 1)
}

TEST_CASE("loader state: JSON round trip, malformed text and a foreign seed are InputErrors") {
  LoaderState s{12, 96, 0xffffffffffffULL};
  LoaderState r = loader_state_from_json(loader_state_to_json(s), "x");
  CHECK(r.consumed_steps == 12);
  CHECK(r.consumed_samples == 96);
  CHECK(r.seed == s.seed);
  auto e = expect_input_error([] { loader_state_from_json("{\"consumed_steps\": 1", "ckpt/loader.json"); });
  CHECK(e.where() == "ckpt/loader.json");
  e = expect_input_error([] { loader_state_from_json("{\"consumed_steps\": 1, \"seed\": 2}", "ckpt/loader.json"); });
  CHECK(std::string(e.what()).find("lacks 'consumed_samples'") != std::string::npos);

  TempDir dir;
  auto src = masked_source(dir);
  Loader loader(src, layout(1, 1, 1, 0), 1, true, 0, 256);
  e = expect_input_error([&] { loader.restore({1, 1, 2}); });
  CHECK(std::string(e.what()).find("seed 2") != std::string::npos);
}

TEST_CASE("evaluation batches: fixed, in order, split across ranks like training") {
  TempDir dir;
  auto src = masked_source(dir);
  EvalLoader one(src, layout(2, 2, 1, 0), 3, 256);
  EvalLoader r0(src, layout(1, 2, 2, 0), 3, 256), r1(src, layout(1, 2, 2, 1), 3, 256);
  for (int it = 0; it < 3; ++it) {
    StepBatch a = one.batch(it), again = one.batch(it);
    CHECK(inputs(a.micro_batches) == inputs(again.micro_batches));
    std::vector<int64_t> expect{it * 4 + 0, it * 4 + 1, it * 4 + 2, it * 4 + 3};
    CHECK(sample_ids(a.micro_batches) == expect);
    StepBatch b0 = r0.batch(it), b1 = r1.batch(it);
    auto joined = inputs(b0.micro_batches);
    auto second = inputs(b1.micro_batches);
    joined.insert(joined.end(), second.begin(), second.end());
    CHECK(joined == inputs(a.micro_batches));
    CHECK(b0.global_targets == a.global_targets);
    CHECK(b1.global_targets == a.global_targets);
  }
}
