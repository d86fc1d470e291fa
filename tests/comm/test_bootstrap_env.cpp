#include <doctest/doctest.h>

#include <map>
#include <string>

#include "runtime/base/error.h"
#include "runtime/comm/bootstrap.h"

using fm::InputError;
using fm::comm::detect_launch;
using fm::comm::LaunchKind;

namespace {
fm::comm::EnvLookup fake(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// The variable an InputError names, or "" when none is thrown.
std::string error_at(const std::map<std::string, std::string>& vars, const std::string& backend = "auto") {
  try {
    detect_launch(backend, fake(vars));
  } catch (const InputError& e) {
    return e.where();
  }
  return "";
}
}  // namespace

TEST_CASE("no launcher: one process without MPI") {
  auto li = detect_launch("auto", fake({}));
  CHECK(li.kind == LaunchKind::Single);
  CHECK(li.world_size == 1);
}

TEST_CASE("mpirun and srun --mpi=pmix select MPI") {
  CHECK(detect_launch("auto", fake({{"OMPI_COMM_WORLD_RANK", "1"}, {"RANK", "1"}})).kind == LaunchKind::Mpi);
  auto li = detect_launch("auto", fake({{"PMIX_RANK", "0"}, {"SLURM_JOB_ID", "7"}}));
  CHECK(li.kind == LaunchKind::Mpi);
  CHECK(li.how == "srun --mpi=pmix");
  CHECK(detect_launch("mpi", fake({})).kind == LaunchKind::Mpi);
}

TEST_CASE("environment variables select the Gloo path") {
  auto li = detect_launch("auto", fake({{"RANK", "2"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "0"},
                                        {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}}));
  CHECK(li.kind == LaunchKind::Env);
  CHECK(li.rank == 2);
  CHECK(li.world_size == 4);
  CHECK(li.local_rank == 0);
  CHECK(li.master_addr == "10.0.0.1");
  CHECK(li.master_port == 29500);
  CHECK(detect_launch("gloo", fake({{"RANK", "0"}, {"WORLD_SIZE", "1"}})).kind == LaunchKind::Single);
}

TEST_CASE("inconsistent environments name the variable") {
  const std::map<std::string, std::string> ok = {
      {"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}};
  CHECK(error_at(ok) == "");
  auto with = [&](const std::string& k, const std::string& v) {
    auto m = ok;
    m[k] = v;
    return m;
  };
  auto without = [&](const std::string& k) {
    auto m = ok;
    m.erase(k);
    return m;
  };
  CHECK(error_at(with("RANK", "2")) == "RANK");
  CHECK(error_at(with("RANK", "-1")) == "RANK");
  CHECK(error_at(with("RANK", "one")) == "RANK");
  CHECK(error_at(with("WORLD_SIZE", "2x")) == "WORLD_SIZE");
  CHECK(error_at(with("WORLD_SIZE", "0")) == "WORLD_SIZE");
  CHECK(error_at(without("WORLD_SIZE")) == "WORLD_SIZE");
  CHECK(error_at(without("RANK")) == "RANK");
  CHECK(error_at(without("MASTER_ADDR")) == "MASTER_ADDR");
  CHECK(error_at(with("MASTER_ADDR", "")) == "MASTER_ADDR");
  CHECK(error_at(without("MASTER_PORT")) == "MASTER_PORT");
  CHECK(error_at(with("MASTER_PORT", "70000")) == "MASTER_PORT");
  CHECK(error_at(with("LOCAL_RANK", "x")) == "LOCAL_RANK");
  CHECK(error_at({}, "gloo") == "RANK");
  CHECK(error_at({}, "nccl") == "--comm_backend");
  CHECK(error_at({{"SLURM_STEP_NUM_TASKS", "4"}}) == "SLURM_STEP_NUM_TASKS");
  CHECK(error_at({{"SLURM_STEP_NUM_TASKS", "1"}}) == "");
}

TEST_CASE("a world of one starts without any launcher") {
  fm::comm::BootstrapOptions opts;
  opts.env = fake({});
  auto w = fm::comm::bootstrap(opts);
  CHECK(w->size() == 1);
  CHECK(w->rank() == 0);
  CHECK(std::string(w->backend()) == "single");
  CHECK(w->hosts().size() == 1);
  CHECK(w->local_rank() == 0);
  float x = 2.f;
  w->comm()->all_reduce(&x, 1, fm::comm::DType::F32, fm::comm::ReduceOp::Sum);
  CHECK(x == 2.f);
  w->finalize();
}
