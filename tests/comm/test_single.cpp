#include <doctest/doctest.h>

#include <vector>

#include "runtime/comm/communicator.h"

using namespace fm::comm;

TEST_CASE("reductions over every reducible type") {
  std::vector<float> a = {1, 5, -2}, b = {3, 1, -1};
  reduce_into(a.data(), b.data(), 3, DType::F32, ReduceOp::Sum);
  CHECK(a == std::vector<float>{4, 6, -3});
  std::vector<int64_t> c = {1, 9}, d = {4, 2};
  reduce_into(c.data(), d.data(), 2, DType::I64, ReduceOp::Max);
  CHECK(c == std::vector<int64_t>{4, 9});
  std::vector<double> e = {1, 9}, f = {4, 2};
  reduce_into(e.data(), f.data(), 2, DType::F64, ReduceOp::Min);
  CHECK(e == std::vector<double>{1, 2});
  CHECK(dtype_size(DType::BF16) == 2);
  CHECK(!dtype_reducible(DType::BF16));
  CHECK(from_kernel_dtype(fm::kernels::DType::I32) == DType::I32);
}

TEST_CASE("the one-process world copies and never waits") {
  auto c = make_single_communicator(std::chrono::seconds(1));
  CHECK(c->size() == 1);
  CHECK(std::string(c->backend()) == "single");
  std::vector<float> in = {1, 2, 3}, out(3);
  c->all_reduce(in.data(), out.data(), 3, DType::F32, ReduceOp::Sum);
  CHECK(out == in);
  c->reduce_scatter(in.data(), out.data(), 3, DType::F32, ReduceOp::Max);
  CHECK(out == in);
  c->all_gather(in.data(), out.data(), 3, DType::F32);
  CHECK(out == in);
  c->broadcast(out.data(), 3, DType::F32, 0);
  c->barrier();
  CHECK(c->all_reduce_value<int64_t>(7) == 7);
  auto g = c->new_group({0}, "pipeline");
  REQUIRE(g);
  CHECK(g->group_label() == "pipeline group");
  CHECK(c->group_label() == "world");
  CHECK(g->world_rank() == 0);
}
