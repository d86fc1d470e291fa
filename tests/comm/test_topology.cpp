#include <doctest/doctest.h>

#include <string>

#include "runtime/base/error.h"
#include "runtime/comm/topology.h"

using fm::InputError;
using fm::comm::Topology;

TEST_CASE("rank layout follows pipe x data with data fastest") {
  Topology t(8, 2);  // 2 stages x 4 replicas
  CHECK(t.data_size() == 4);
  CHECK(t.coord(0).stage == 0);
  CHECK(t.coord(3).stage == 0);
  CHECK(t.coord(3).data == 3);
  CHECK(t.coord(4).stage == 1);
  CHECK(t.coord(6).data == 2);
  for (int r = 0; r < 8; ++r) CHECK(t.rank_of(t.coord(r).stage, t.coord(r).data) == r);
  CHECK(t.data_parallel_ranks(5) == std::vector<int>{4, 5, 6, 7});
  CHECK(t.pipeline_ranks(5) == std::vector<int>{1, 5});
  CHECK(t.tied_ranks(1) == std::vector<int>{1, 5});
  CHECK(t.prev_stage_rank(5) == 1);
  CHECK(!t.prev_stage_rank(1));
  CHECK(t.next_stage_rank(1) == 5);
  CHECK(!t.next_stage_rank(5));
}

TEST_CASE("groups of a three-stage pipeline") {
  Topology t(6, 3);
  CHECK(t.pipeline_groups() == std::vector<std::vector<int>>{{0, 2, 4}, {1, 3, 5}});
  CHECK(t.data_parallel_groups() == std::vector<std::vector<int>>{{0, 1}, {2, 3}, {4, 5}});
  CHECK(t.tied_ranks(3) == std::vector<int>{1, 5});
  CHECK(t.is_first_stage(1));
  CHECK(t.is_last_stage(4));
  CHECK(!t.is_last_stage(3));
  CHECK(Topology(4, 1).tied_ranks(2).empty());
}

TEST_CASE("a pipeline size that does not divide the world is an input error") {
  try {
    Topology(6, 4);
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(e.where() == "--pipe_parallel_size");
    CHECK(std::string(e.what()).find("world size 6") != std::string::npos);
    CHECK(std::string(e.what()).find("4 pipeline stages") != std::string::npos);
  }
  CHECK_THROWS_AS(Topology(4, 0), InputError);
  try {
    Topology(4, 2, 2);
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    CHECK(e.where() == "--tensor_parallel_size");
  }
}

TEST_CASE("layout table names every rank, its stage, replica and host") {
  Topology t(4, 2);
  const auto s = t.table({"a", "a", "b", "b"});
  CHECK(s.find("4 ranks = 2 pipeline stages x 2 data-parallel replicas") != std::string::npos);
  CHECK(s.find("     3      1     1  b") != std::string::npos);
  CHECK(s.find("     0      0     0  a") != std::string::npos);
  CHECK(Topology(1, 1).table().find("host") == std::string::npos);
}
