#include <doctest/doctest.h>

#include <map>
#include <random>

#include "runtime/checkpoint/pieces.h"
#include "tests/checkpoint/synthetic.h"

using namespace fm::checkpoint;
using fm::model::ParamLayout;

TEST_CASE("pieces of a flat range tile it, replicas left out") {
  for (bool tied : {false, true}) {
    CAPTURE(tied);
    const auto c = testing::make_model({.tied = tied});
    const int n = int(c.num_layers_total());
    std::mt19937_64 rng(tied ? 7 : 8);
    for (auto [lb, le] :
         {std::pair{0, n}, std::pair{0, 2}, std::pair{2, n}, std::pair{3, n}, std::pair{1, 4}}) {
      CAPTURE(lb);
      CAPTURE(le);
      const ParamLayout layout = fm::model::make_param_layout(c, lb, le);
      for (int trial = 0; trial < 50; ++trial) {
        int64_t a = int64_t(rng() % uint64_t(layout.total + 1));
        int64_t b = a + int64_t(rng() % uint64_t(layout.total + 10));  // may pass the end (padding)
        for (bool with_replicas : {false, true}) {
          const auto pieces = pieces_of_range(layout, a, b, with_replicas);
          int64_t at = a;
          for (const Piece& p : pieces) {
            const fm::model::ParamInfo* info = layout.find(p.name);
            REQUIRE(info != nullptr);
            // Without replicas a piece may start after a skipped replica; otherwise they tile.
            if (with_replicas || !info->replica) CHECK(p.flat >= at);
            if (with_replicas) CHECK(p.flat == at);
            CHECK_FALSE((!with_replicas && info->replica));
            CHECK(p.flat == *flat_offset_of(layout, p.name, p.begin));
            CHECK(0 <= p.begin);
            CHECK(p.begin < p.end);
            CHECK(p.end <= info->numel());
            at = p.flat + p.size();
          }
          if (with_replicas) CHECK(at == std::max(a, std::min(b, layout.total)));
        }
      }
    }
  }
}

TEST_CASE("every tensor of the model is stored exactly once across any stage split") {
  for (bool tied : {false, true}) {
    const auto c = testing::make_model({.tied = tied});
    const ParamLayout full = full_layout(c);
    for (int pipe : {1, 2, 3, 6}) {
      CAPTURE(pipe);
      std::map<std::string, int64_t> stored;
      const auto cuts = testing::stage_cuts(c, pipe);
      for (int s = 0; s < pipe; ++s) {
        const ParamLayout l = fm::model::make_param_layout(c, cuts[size_t(s)], cuts[size_t(s) + 1]);
        for (const Piece& p : pieces_of_range(l, 0, l.total)) stored[p.name] += p.size();
      }
      CHECK(stored.size() == full.params.size());
      for (const auto& p : full.params) CHECK(stored[p.name] == p.numel());
    }
  }
}

TEST_CASE("a tied replica is listed under its owner's name when reading") {
  const auto c = testing::make_model({.tied = true});
  const ParamLayout head = fm::model::make_param_layout(c, 3, int(c.num_layers_total()));
  const auto* replica = head.find("embed_tokens");
  REQUIRE(replica != nullptr);
  CHECK(replica->replica);
  bool listed = false;
  for (const Piece& p : pieces_of_range(head, 0, head.total, true)) listed |= p.name == "embed_tokens";
  CHECK(listed);
  for (const Piece& p : pieces_of_range(head, 0, head.total, false)) CHECK(p.name != "embed_tokens");
}

TEST_CASE("piece keys round trip and reject other names") {
  Kind k;
  std::string name;
  int64_t b = 0, e = 0;
  const std::string key = piece_key(Kind::ExpAvgSq, "layers.3.qkv", 12, 400);
  CHECK(key == "exp_avg_sq/layers.3.qkv[12:400]");
  REQUIRE(parse_piece_key(key, k, name, b, e));
  CHECK(k == Kind::ExpAvgSq);
  CHECK(name == "layers.3.qkv");
  CHECK(b == 12);
  CHECK(e == 400);
  for (const char* bad : {"params/x", "moment/x[0:1]", "params/x[2:1]", "params/[0:1]", "params/x[a:1]",
                          "x[0:1]", "params/x[0:1]z", "params/x[-1:1]"})
    CHECK_FALSE(parse_piece_key(bad, k, name, b, e));
}
