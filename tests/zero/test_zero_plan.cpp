#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <string>

#include "model/llama_config.h"
#include "model/param_layout.h"
#include "test_layouts.h"
#include "zero/zero_plan.h"

using namespace fm::zero;
using fm::zero::testing::head_stage_layout;

namespace {

// A model config of the checkout's configs/models/ (the tests run with FM_SOURCE_DIR set).
fm::model::LlamaConfig model_config(const std::string& name) {
  const char* source = std::getenv("FM_SOURCE_DIR");
  REQUIRE_MESSAGE(source, "FM_SOURCE_DIR is not set: run the tests through meson test");
  return fm::model::load_llama_config(std::string(source) + "/configs/models/" + name);
}

}  // namespace

TEST_CASE("partitions: padded to a multiple of 2*dp, equal parts, padding at the end") {
  for (int64_t n : {0, 1, 7, 416, 1000, 1001, 123457}) {
    for (int dp : {1, 2, 3, 4, 8, 16}) {
      CAPTURE(n);
      CAPTURE(dp);
      const ZeroPartitioning p = make_zero_partitioning(n, dp);
      CHECK(p.padded_numel % (2 * dp) == 0);
      CHECK(p.padded_numel >= n);
      CHECK(p.padded_numel - n < 2 * dp);
      CHECK(p.partition_numel * dp == p.padded_numel);
      CHECK(p.partition_numel % 2 == 0);
      int64_t padding = 0;
      for (int r = 0; r < dp; ++r) {
        CHECK(p.end(r) - p.begin(r) == p.partition_numel);
        if (r > 0) CHECK(p.begin(r) == p.end(r - 1));
        padding += p.padding(r);
      }
      CHECK(padding == p.padded_numel - n);
    }
  }
  const ZeroPartitioning p = make_zero_partitioning(1001, 4);  // 1001 -> 1008, 252 each
  CHECK(p.padded_numel == 1008);
  CHECK(p.partition_numel == 252);
  CHECK(p.padding(3) == 7);
  CHECK(p.padding(2) == 0);
}

TEST_CASE("reduce buckets walk the buffer backwards, whole tensors, closed before overflowing") {
  const auto layout = head_stage_layout();  // tensor sizes 8 96 64 8 128 64 8 40
  const auto buckets = reduce_buckets(layout, 100);
  // Backwards: 40+8 (next 64 would overflow) | 64 | 128 alone (larger than the bucket) | 8+64 | 96 | 8
  const std::vector<Bucket> want{{368, 416}, {304, 368}, {176, 304}, {104, 176}, {8, 104}, {0, 8}};
  CHECK(buckets == want);
  // Every bucket size setting covers the buffer exactly once, in descending order.
  for (int64_t size : {1, 8, 9, 50, 100, 200, 415, 416, 10000}) {
    CAPTURE(size);
    const auto b = reduce_buckets(layout, size);
    int64_t expect_end = layout.total;
    for (const Bucket& x : b) {
      CHECK(x.end == expect_end);
      CHECK(x.size() > 0);
      expect_end = x.begin;
    }
    CHECK(expect_end == 0);
  }
  CHECK(reduce_buckets(layout, 10000).size() == 1);
  CHECK(intersect({100, 200}, 150, 300) == Bucket{150, 200});
  CHECK(intersect({100, 200}, 200, 300).size() == 0);
}

TEST_CASE("all-gather shards as DeepSpeed's sharded all-gather") {
  const ZeroPartitioning p = make_zero_partitioning(1000, 4);  // 1000 -> 1000, 250 each
  const auto one = allgather_shards(p, 500000000);
  REQUIRE(one.size() == 1);
  CHECK(one[0] == GatherShard{0, 250});
  // 250*4/300 = 3 shards of 250/3 = 83 -> 82 (even), the last takes the rest.
  const auto three = allgather_shards(p, 300);
  const std::vector<GatherShard> want{{0, 82}, {82, 82}, {164, 86}};
  CHECK(three == want);
}

TEST_CASE("memory per rank for ZeRO stages 0, 1, 2") {
  ZeroMemoryInputs in;
  in.numel = 1000;
  in.dp = 4;
  in.reduce_bucket_size = 100;
  in.stage = 0;
  ZeroMemory m0 = zero_memory_per_rank(in);
  CHECK(m0.params == 4000);
  CHECK(m0.grads == 4000);
  CHECK(m0.optimizer_state == 8000);  // fp32 params are the master: m + v only
  in.stage = 1;
  ZeroMemory m1 = zero_memory_per_rank(in);
  CHECK(m1.params == 4000);
  CHECK(m1.grads == 4000);
  CHECK(m1.optimizer_state == 250 * 8);
  in.stage = 2;
  ZeroMemory m2 = zero_memory_per_rank(in);
  CHECK(m2.grads == 250 * 4 + 100 * 4);
  CHECK(m2.optimizer_state == 250 * 8);
  // bf16 working params: an fp32 master per owned element joins m and v.
  in.param_bytes = 2;
  ZeroMemory bf = zero_memory_per_rank(in);
  CHECK(bf.params == 2000);
  CHECK(bf.optimizer_state == 250 * 12);
  CHECK(bf.total() == bf.params + bf.grads + bf.optimizer_state);
}

TEST_CASE("dp=4 holds a quarter of the optimizer state of dp=1 for LLaMA stages") {
  for (const char* name : {"tiny.json", "tinyllama-1.1b.json"}) {
    const auto cfg = model_config(name);
    const int layers = static_cast<int>(cfg.num_layers_total());
    CAPTURE(name);
    for (auto [lb, le] : {std::pair{0, layers}, std::pair{0, layers / 2}, std::pair{layers / 2, layers}}) {
      const auto layout = fm::model::make_param_layout(cfg, lb, le);
      for (int stage : {1, 2}) {
        for (size_t pbytes : {size_t{4}, size_t{2}}) {
          ZeroMemoryInputs in;
          in.stage = stage;
          in.numel = layout.total;
          in.param_bytes = pbytes;
          in.dp = 1;
          const double one = static_cast<double>(zero_memory_per_rank(in).optimizer_state);
          in.dp = 4;
          const double four = static_cast<double>(zero_memory_per_rank(in).optimizer_state);
          CAPTURE(layout.total);
          CHECK(std::abs(four - one / 4) <= 0.05 * one / 4);
        }
      }
    }
  }
}
