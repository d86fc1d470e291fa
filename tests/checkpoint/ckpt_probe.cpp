// Test probe for the multi-process and reference checks of checkpoints (not a user-facing program).
//
//   ckpt_probe save DIR --model CONFIG --layout P,D,Z --steps A-B [--max_checkpoints K]
//                       [--weights_only] [--pid_dir D] [--tokenizer PATH] [--sleep_ms MS]
//       Saves synthetic checkpoints (tests/checkpoint/synthetic.h) of steps A..B into
//       DIR/checkpoints. Under mpirun with P*D ranks each rank writes its own shard through
//       save_checkpoint; alone, the P*D ranks are simulated in this process. Rank 0 prints
//       "committed step N" after each save. --pid_dir: each rank writes rank-R.pid there first.
//   ckpt_probe check DIR --model CONFIG --layout P,D,Z [--resume auto|PATH] [--expect_step N]
//       Resumes as every rank of the layout (under mpirun, or simulated) and compares what each
//       rank reads (parameters of its stage, moments of its ZeRO partition, the state) with the
//       synthetic values of the step it got. Prints "resumed step N" or "fresh start".
//   ckpt_probe logits CKPT BATCH_JSON OUT.safetensors [CUTS]
//       Loads the checkpoint's weights into stages cut at CUTS and writes the eval logits (N,V).
// Exit codes: 0 fine, 1 a value differs, 2 an InputError (printed), 3 a runtime fault.
#include <rapidjson/document.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "kernels/cpu/cpu_ops.h"
#include "model/io/safetensors.h"
#include "model/stage.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/export.h"
#include "runtime/comm/bootstrap.h"
#include "tests/checkpoint/synthetic.h"

using namespace fm::checkpoint;
using namespace fm::checkpoint::testing;

namespace {

struct Options {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = flags.find(k);
    return it == flags.end() ? def : it->second;
  }
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0) {
      if (a == "--weights_only")
        o.flags[a] = "1";
      else if (i + 1 < argc)
        o.flags[a] = argv[++i];
    } else {
      o.positional.push_back(a);
    }
  }
  return o;
}

std::pair<int64_t, int64_t> parse_steps(const std::string& s) {
  const size_t dash = s.find('-');
  if (dash == std::string::npos) return {std::stoll(s), std::stoll(s)};
  return {std::stoll(s.substr(0, dash)), std::stoll(s.substr(dash + 1))};
}

int save(const Options& o, fm::comm::World& world) {
  const auto c = fm::model::load_llama_config(o.get("--model"));
  const Layout l = parse_layout(o.get("--layout"));
  const auto [first, last] = parse_steps(o.get("--steps"));
  const std::string out = o.positional.at(0);
  const int max_keep = std::stoi(o.get("--max_checkpoints", "0"));
  const bool optimizer = o.get("--weights_only").empty();
  const int sleep_ms = std::stoi(o.get("--sleep_ms", "0"));
  if (!o.get("--pid_dir").empty()) {
    std::filesystem::create_directories(o.get("--pid_dir"));
    std::ofstream(o.get("--pid_dir") + "/rank-" + std::to_string(world.rank()) + ".pid")
        << ::getpid() << "\n";
  }
  const bool simulate = world.size() == 1 && l.world() > 1;
  FM_CHECK(simulate || world.size() == l.world(), "run with P*D ranks or alone");
  const int stage = world.rank() / l.dp, dp_rank = world.rank() % l.dp;  // the topology's rank order
  const std::vector<int> cuts = stage_cuts(c, l.pipe);
  const auto layout = fm::model::make_param_layout(c, cuts[size_t(stage)], cuts[size_t(stage) + 1]);
  for (int64_t step = first; step <= last; ++step) {
    if (simulate) {
      CommitOptions opt;
      opt.max_checkpoints = max_keep;
      save_simulated(checkpoints_root(out), c, l, step, optimizer, opt, o.get("--tokenizer"));
    } else {
      const ShardRange range = shard_range(l.zero, l.dp, dp_rank, layout.total);
      const ShardBuffers b = synthetic_shard(layout, range.begin, range.end, step);
      SaveRequest req;
      req.output_dir = out;
      req.step = step;
      req.writes = range.writes;
      req.shard = {stage,
                   dp_rank,
                   &layout,
                   range.begin,
                   range.end,
                   b.params.data(),
                   optimizer ? b.exp_avg.data() : nullptr,
                   optimizer ? b.exp_avg_sq.data() : nullptr};
      req.model = &c;
      req.topology = topology_of(c, l);
      req.state = synthetic_state(step);
      req.state.tokenizer = o.get("--tokenizer");
      req.max_checkpoints = max_keep;
      save_checkpoint(*world.comm(), req);
    }
    if (world.rank() == 0) {
      std::printf("committed step %lld\n", static_cast<long long>(step));
      std::fflush(stdout);
    }
    if (sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
  }
  return 0;
}

// One (possibly simulated) rank's resume and checks; returns the step, -1 for a fresh start.
int64_t check_rank_resume(const Options& o, fm::comm::Communicator& comm, const fm::model::LlamaConfig& c,
                          const Layout& l, int stage, int dp_rank, std::string& problem) {
  const std::vector<int> cuts = stage_cuts(c, l.pipe);
  const auto layout = fm::model::make_param_layout(c, cuts[size_t(stage)], cuts[size_t(stage) + 1]);
  const ShardRange range = shard_range(l.zero == 0 ? 1 : l.zero, l.dp, dp_rank, layout.total);
  ResumeRequest req;
  const std::string mode = o.get("--resume", "auto");
  req.mode = mode == "auto"   ? fm::runtime::ResumeMode::Auto
             : mode == "none" ? fm::runtime::ResumeMode::None
                              : fm::runtime::ResumeMode::Path;
  req.path = mode;
  req.output_dir = o.positional.at(0);
  req.model = &c;
  req.layout = &layout;
  req.state_begin = l.zero == 0 ? 0 : range.begin;
  req.state_end = l.zero == 0 ? layout.total : range.end;
  const ResumeResult r = open_for_resume(comm, req);
  if (!r.reader) return -1;
  const int64_t step = r.reader->state().global_step;
  problem = check_rank(*r.reader, c, l, stage, dp_rank, step);
  TrainState want = synthetic_state(step);
  want.tokenizer = r.reader->state().tokenizer;
  if (problem.empty() && !(r.reader->state() == want))
    problem = "the training state differs from step " + std::to_string(step);
  return step;
}

int check(const Options& o, fm::comm::World& world) {
  const auto c = fm::model::load_llama_config(o.get("--model"));
  const Layout l = parse_layout(o.get("--layout"));
  const bool simulate = world.size() == 1 && l.world() > 1;
  FM_CHECK(simulate || world.size() == l.world(), "run with P*D ranks or alone");
  std::string problem;
  int64_t step = -2;
  if (simulate) {
    auto single = fm::comm::make_single_communicator();
    for (int r = 0; r < l.world() && problem.empty(); ++r) {
      const int64_t s = check_rank_resume(o, *single, c, l, r / l.dp, r % l.dp, problem);
      if (step != -2 && s != step) problem = "simulated ranks resumed different steps";
      step = s;
    }
  } else {
    step = check_rank_resume(o, *world.comm(), c, l, world.rank() / l.dp, world.rank() % l.dp, problem);
  }
  int32_t ok = problem.empty() ? 1 : 0;
  if (!problem.empty()) std::fprintf(stderr, "rank %d: %s\n", world.rank(), problem.c_str());
  ok = world.comm()->all_reduce_value(ok, fm::comm::ReduceOp::Min);
  int64_t lo = world.comm()->all_reduce_value(step, fm::comm::ReduceOp::Min);
  int64_t hi = world.comm()->all_reduce_value(step, fm::comm::ReduceOp::Max);
  if (lo != hi) ok = 0;
  if (!o.get("--expect_step").empty() && step != std::stoll(o.get("--expect_step"))) {
    std::fprintf(stderr, "rank %d: resumed step %lld, expected %s\n", world.rank(),
                 static_cast<long long>(step), o.get("--expect_step").c_str());
    ok = 0;
  }
  if (world.rank() == 0) {
    if (step < 0)
      std::printf("fresh start\n");
    else
      std::printf("resumed step %lld\n", static_cast<long long>(step));
  }
  return ok ? 0 : 1;
}

int logits(const Options& o) {
  const std::string ckpt = o.positional.at(0);
  const auto c = checkpoint_model_config(ckpt, "ckpt_probe");
  std::ifstream in(o.positional.at(1));
  std::stringstream ss;
  ss << in.rdbuf();
  rapidjson::Document d;
  d.Parse(ss.str().c_str());
  const int B = d["B"].GetInt(), T = d["T"].GetInt();
  std::vector<int32_t> tokens, targets;
  for (const auto& v : d["tokens"].GetArray()) tokens.push_back(v.GetInt());
  targets.assign(tokens.size(), -100);
  std::vector<int> cuts = {0, int(c.num_layers_total())};
  if (o.positional.size() > 3) {
    cuts.clear();
    std::stringstream cs(o.positional[3]);
    std::string part;
    while (std::getline(cs, part, ',')) cuts.push_back(std::stoi(part));
  }
  auto ops = fm::kernels::make_cpu_ops(1);
  std::vector<std::unique_ptr<fm::model::Stage>> stages;
  for (size_t s = 0; s + 1 < cuts.size(); ++s) {
    stages.push_back(
        std::make_unique<fm::model::Stage>(c, cuts[s], cuts[s + 1], *ops, fm::model::StageShape{B, T, 1}));
    std::vector<float> host(size_t(stages.back()->num_params()));
    load_weights(ckpt, c, stages.back()->layout(), host.data(), "ckpt_probe");
    stages.back()->upload_params(host.data());
  }
  const float* h = nullptr;
  for (auto& st : stages) {
    st->forward(0, tokens.data(), h, targets.data(), 0.0f, false);
    if (!st->is_last()) h = st->output(0);
  }
  const int64_t N = int64_t(B) * T;
  std::vector<float> out(size_t(N * c.vocab_size));
  ops->copy(fm::kernels::f32(out.data()), fm::kernels::f32(stages.back()->logits(0)), int64_t(out.size()));
  fm::model::io::write_safetensors(o.positional.at(2),
                                   {{"logits", fm::kernels::DType::F32, {N, c.vocab_size}, out.data()}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ckpt_probe save|check|logits ...\n");
    return 64;
  }
  const std::string cmd = argv[1];
  const Options o = parse(argc, argv);
  std::unique_ptr<fm::comm::World> world;
  try {
    if (cmd == "logits") return logits(o);
    world = fm::comm::bootstrap();
    fm::log::set_rank(world->rank(), world->size());
    int rc = 64;
    if (cmd == "save") rc = save(o, *world);
    if (cmd == "check") rc = check(o, *world);
    world->finalize();
    return rc;
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    std::fflush(stderr);
    // Input errors of the checkpoint code are agreed on by every rank (open_for_resume): all end
    // cleanly together. (Several ranks calling MPI_Abort at once can crash Open MPI's mpirun.)
    if (world) world->finalize();
    return fm::kExitInputError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    std::fflush(stderr);
    if (world && world->size() > 1) fm::comm::abort_job(3, "runtime fault");
    return 3;
  }
}
