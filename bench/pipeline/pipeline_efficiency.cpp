// Pipeline efficiency of the executor: each rank is one stage of a pipeline of synthetic layers
// of fixed cost (a forward takes t_fwd, a backward t_bwd: sleeps, so ranks oversubscribed on a
// small machine do not compete for cores), exchanging real (B,T,C) fp32 messages through the
// communicator. A 1F1B step ideally takes (m + p - 1) x (t_fwd + t_bwd); the ratio of the
// measured step time to that is the executor's overhead (communication, waits, bookkeeping).
//
// usage: mpirun -np P pipeline_efficiency [--micro_batches M] [--fwd_ms F] [--bwd_ms B]
//          [--floats N] [--steps S] [--schedule 1f1b|gpipe]
// Prints one JSON line (rank 0).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "pipeline/executor.h"
#include "runtime/comm/bootstrap.h"

namespace {

using Clock = std::chrono::steady_clock;

class SyntheticStage final : public fm::pipeline::StageCompute {
 public:
  SyntheticStage(fm::kernels::Ops& ops, bool first, bool last, int slots, int64_t floats, double fwd_s, double bwd_s)
      : ops_(ops), first_(first), last_(last), slots_(slots), floats_(floats), fwd_(fwd_s), bwd_(bwd_s),
        out_(size_t(slots) * size_t(floats), 1.0f), in_grad_(size_t(slots) * size_t(floats), 1.0f) {}
  bool is_first() const override { return first_; }
  bool is_last() const override { return last_; }
  int num_slots() const override { return slots_; }
  int64_t message_floats() const override { return floats_; }
  fm::kernels::Ops& ops() const override { return ops_; }
  double forward(int slot, const int32_t*, const float* hidden_in, const int32_t*, float, bool) override {
    if (hidden_in) std::memcpy(&out_[size_t(slot) * size_t(floats_)], hidden_in, size_t(floats_) * sizeof(float));
    std::this_thread::sleep_for(std::chrono::duration<double>(fwd_));
    return 0.0;
  }
  const float* output(int slot) const override { return &out_[size_t(slot) * size_t(floats_)]; }
  void backward(int slot, const float* d) override {
    if (d) std::memcpy(&in_grad_[size_t(slot) * size_t(floats_)], d, size_t(floats_) * sizeof(float));
    std::this_thread::sleep_for(std::chrono::duration<double>(bwd_));
  }
  const float* input_grad(int slot) const override { return &in_grad_[size_t(slot) * size_t(floats_)]; }

 private:
  fm::kernels::Ops& ops_;
  bool first_, last_;
  int slots_;
  int64_t floats_;
  double fwd_, bwd_;
  std::vector<float> out_, in_grad_;
};

}  // namespace

int main(int argc, char** argv) {
  int m = 8, steps = 10;
  double fwd_ms = 20, bwd_ms = 40;
  int64_t floats = 8 * 128 * 128;
  std::string sched = "1f1b";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--micro_batches") m = std::atoi(v.c_str());
    else if (k == "--fwd_ms") fwd_ms = std::atof(v.c_str());
    else if (k == "--bwd_ms") bwd_ms = std::atof(v.c_str());
    else if (k == "--floats") floats = std::atoll(v.c_str());
    else if (k == "--steps") steps = std::atoi(v.c_str());
    else if (k == "--schedule") sched = v;
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  auto world = fm::comm::bootstrap({});
  const fm::comm::CommPtr& comm = world->comm();
  const int p = comm->size(), s = comm->rank();
  fm::pipeline::ScheduleKind kind = sched == "gpipe" ? fm::pipeline::ScheduleKind::GPipe
                                                     : fm::pipeline::ScheduleKind::OneFOneB;
  const fm::pipeline::Schedule schedule = fm::pipeline::make_schedule(kind, p, m, s);
  auto ops = fm::kernels::make_cpu_ops(1);
  SyntheticStage stage(*ops, s == 0, s == p - 1, schedule.num_buffers, floats, fwd_ms / 1e3, bwd_ms / 1e3);
  fm::pipeline::PipelineExecutor exec(stage, comm, s > 0 ? s - 1 : -1, s < p - 1 ? s + 1 : -1);
  std::vector<int32_t> tokens(1, 0);
  std::vector<fm::pipeline::MicroBatchInput> mbs(size_t(m), {tokens.data(), tokens.data()});

  std::vector<double> times;
  for (int it = 0; it < steps + 1; ++it) {  // the first step warms up connections
    comm->barrier();
    const auto t0 = Clock::now();
    exec.run(schedule, mbs, 1.0f, true, {});
    double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    dt = comm->all_reduce_value(dt, fm::comm::ReduceOp::Max);
    if (it > 0) times.push_back(dt);
  }
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  const double ideal = (m + p - 1) * (fwd_ms + bwd_ms) / 1e3;
  if (s == 0)
    std::printf("{\"schedule\": \"%s\", \"stages\": %d, \"micro_batches\": %d, \"fwd_ms\": %g, \"bwd_ms\": %g, "
                "\"message_bytes\": %lld, \"step_s_median\": %.4f, \"step_s_best\": %.4f, \"ideal_s\": %.4f, "
                "\"ratio\": %.4f, \"backend\": \"%s\"}\n",
                sched.c_str(), p, m, fwd_ms, bwd_ms, static_cast<long long>(floats * 4), median, times.front(), ideal,
                median / ideal, comm->backend());
  world->finalize();
  return 0;
}
