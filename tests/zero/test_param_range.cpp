#include <doctest/doctest.h>

#include "test_layouts.h"
#include "zero/param_range.h"

using namespace fm::zero;
using fm::zero::testing::head_stage_layout;

TEST_CASE("whole-buffer range: runs of decayed and not decayed tensors, replicas out of the norm") {
  const auto layout = head_stage_layout();
  REQUIRE(layout.total == 416);
  const ParamRange r = whole_buffer_range(layout);
  CHECK(r.begin == 0);
  CHECK(r.end == 416);
  const std::vector<Segment> update{{0, 8, false},    {8, 168, true},    {168, 176, false},
                                    {176, 368, true}, {368, 376, false}, {376, 416, true}};
  CHECK(r.update == update);
  // The replica (the last 40 elements) is updated but not counted in the norm.
  REQUIRE(r.norm.size() == 1);
  CHECK(r.norm[0].begin == 0);
  CHECK(r.norm[0].end == 376);
}

TEST_CASE("a range cuts tensors at its bounds and may reach into padding") {
  const auto layout = head_stage_layout();
  const ParamRange r = make_param_range(layout, 100, 172);
  const std::vector<Segment> update{{100, 168, true}, {168, 172, false}};
  CHECK(r.update == update);
  CHECK(r.size() == 72);

  const ParamRange tail = make_param_range(layout, 400, 420);  // 4 elements of padding
  REQUIRE(tail.update.size() == 1);
  CHECK(tail.update[0] == Segment{400, 416, true});
  CHECK(tail.norm.empty());
  CHECK(tail.size() == 20);

  const ParamRange padding_only = make_param_range(layout, 416, 420);
  CHECK(padding_only.update.empty());
  CHECK(padding_only.norm.empty());
}

TEST_CASE("ranges that split the buffer cover every element exactly once") {
  const auto layout = head_stage_layout();
  int64_t covered = 0, counted = 0;
  for (int64_t lo = 0; lo < 416; lo += 52) {
    const ParamRange r = make_param_range(layout, lo, lo + 52);
    for (const Segment& s : r.update) covered += s.size();
    for (const Segment& s : r.norm) counted += s.size();
  }
  CHECK(covered == 416);
  CHECK(counted == 376);
}
