#include "tests/checkpoint/synthetic.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "runtime/base/error.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/file_ops.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/shard_writer.h"
#include "runtime/checkpoint/xxhash64.h"

namespace fm::checkpoint::testing {

TempDir::TempDir() {
  static int counter = 0;
  path = (std::filesystem::temp_directory_path() / fmt::format("fm-ckpt-test-{}-{}", ::getpid(), counter++))
             .string();
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

int run_in_child(const std::function<void()>& fn) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  FM_CHECK(pid >= 0, "fork failed");
  if (pid == 0) {
    try {
      fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: %s\n", e.what());
      std::fflush(stderr);
      ::_exit(3);
    }
    ::_exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

Layout parse_layout(const std::string& text) {
  Layout l;
  char comma1 = 0, comma2 = 0;
  std::istringstream in(text);
  in >> l.pipe >> comma1 >> l.dp >> comma2 >> l.zero;
  FM_CHECK(in && comma1 == ',' && comma2 == ',' && l.pipe > 0 && l.dp > 0, "layout is P,D,Z: " + text);
  return l;
}

std::vector<int> stage_cuts(const model::LlamaConfig& c, int pipe) {
  const int n = int(c.num_layers_total());
  std::vector<int> cuts;
  for (int s = 0; s <= pipe; ++s) cuts.push_back(s * n / pipe);
  return cuts;
}

Topology topology_of(const model::LlamaConfig& c, const Layout& l) {
  return {l.pipe, l.dp, l.zero, l.world(), stage_cuts(c, l.pipe)};
}

float synthetic_value(Kind kind, const std::string& name, int64_t element, int64_t cols, int64_t step) {
  const uint64_t h = xxh64(name.data(), name.size(), uint64_t(step) * 0x9E3779B97F4A7C15ULL + uint64_t(kind));
  uint64_t x = h ^ (uint64_t(element) * 0xBF58476D1CE4E5B9ULL);
  x ^= x >> 31;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 29;
  const float u = float(double(x >> 40) / double(1 << 24)) * 2.0f - 1.0f;  // [-1, 1)
  switch (kind) {
    case Kind::Params:
      return cols == 1 ? 1.0f + 0.1f * u : u / std::sqrt(float(cols));
    case Kind::ExpAvg:
      return 1e-3f * u;
    case Kind::ExpAvgSq:
      return 1e-6f * (u + 1.5f);
  }
  return 0;
}

void fill_synthetic(Kind kind, const model::ParamLayout& layout, int64_t begin, int64_t end, int64_t step,
                    float* out) {
  std::fill(out, out + (end - begin), 0.0f);
  for (const Piece& p : pieces_of_range(layout, begin, end, true)) {
    const model::ParamInfo* info = layout.find(p.name);
    for (int64_t e = p.begin; e < p.end; ++e)
      out[p.flat - begin + (e - p.begin)] = synthetic_value(kind, p.name, e, info->cols, step);
  }
}

ShardBuffers synthetic_shard(const model::ParamLayout& layout, int64_t begin, int64_t end, int64_t step) {
  const size_t n = size_t(end - begin);
  ShardBuffers b{std::vector<float>(n), std::vector<float>(n), std::vector<float>(n)};
  fill_synthetic(Kind::Params, layout, begin, end, step, b.params.data());
  fill_synthetic(Kind::ExpAvg, layout, begin, end, step, b.exp_avg.data());
  fill_synthetic(Kind::ExpAvgSq, layout, begin, end, step, b.exp_avg_sq.data());
  return b;
}

TrainState synthetic_state(int64_t step) {
  TrainState s;
  s.global_step = step;
  s.optimizer_steps = step;
  s.scheduler_t = step - 1;
  s.skipped_steps = 0;
  // Compact JSON: the manifest keeps JSON values and gives them back in this form.
  s.loader_json =
      fmt::format("{{\"consumed_steps\":{},\"consumed_samples\":{},\"seed\":3407}}", step, 8 * step);
  s.rng_json = fmt::format("{{\"state\":[{},7]}}", step);
  s.loss_scaler = LossScalerState{65536.0 / double(1 + step % 3), step, step / 2, 2};
  s.config_hash = "cafe" + std::to_string(step);
  s.extra_json = "{\"note\":\"synthetic\"}";
  return s;
}

CommitResult save_simulated(const std::string& root, const model::LlamaConfig& c, const Layout& l,
                            int64_t step, bool optimizer_state, const CommitOptions& options,
                            const std::string& tokenizer) {
  const SaveStart start = begin_save(root, step, unique_token());
  const std::vector<int> cuts = stage_cuts(c, l.pipe);
  CommitInput in;
  in.tmp_dir = start.tmp_dir;
  in.step = step;
  in.state = synthetic_state(step);
  in.state.tokenizer = tokenizer;
  in.model = &c;
  in.topology = topology_of(c, l);
  for (int s = 0; s < l.pipe; ++s) {
    const model::ParamLayout layout = model::make_param_layout(c, cuts[size_t(s)], cuts[size_t(s) + 1]);
    for (int d = 0; d < l.dp; ++d) {
      const ShardRange range = shard_range(l.zero, l.dp, d, layout.total);
      if (!range.writes) continue;
      const ShardBuffers b = synthetic_shard(layout, range.begin, range.end, step);
      ShardData data{s,
                     d,
                     &layout,
                     range.begin,
                     range.end,
                     b.params.data(),
                     optimizer_state ? b.exp_avg.data() : nullptr,
                     optimizer_state ? b.exp_avg_sq.data() : nullptr};
      in.shards.push_back(write_shard(start.tmp_dir, data));
    }
  }
  return commit_save(in, options);
}

std::string check_rank(const CheckpointReader& r, const model::LlamaConfig& c, const Layout& l, int stage,
                       int dp_rank, int64_t step) {
  const std::vector<int> cuts = stage_cuts(c, l.pipe);
  const model::ParamLayout layout = model::make_param_layout(c, cuts[size_t(stage)], cuts[size_t(stage) + 1]);
  const ShardRange state = shard_range(l.zero == 0 ? 1 : l.zero, l.dp, dp_rank, layout.total);
  const int64_t sb = l.zero == 0 ? 0 : state.begin, se = l.zero == 0 ? layout.total : state.end;
  std::vector<float> got(size_t(layout.total)), want(size_t(layout.total));
  r.read_flat(Kind::Params, layout, 0, layout.total, got.data());
  fill_synthetic(Kind::Params, layout, 0, layout.total, step, want.data());
  for (size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], 4) != 0)
      return fmt::format("stage {} dp {}: params[{}] = {} but step {} has {}", stage, dp_rank, i, got[i],
                         step, want[i]);
  if (!r.has_optimizer_state()) return "";
  for (Kind k : {Kind::ExpAvg, Kind::ExpAvgSq}) {
    got.assign(size_t(se - sb), -1.0f);
    want.assign(size_t(se - sb), 0.0f);
    r.read_flat(k, layout, sb, se, got.data());
    fill_synthetic(k, layout, sb, se, step, want.data());
    for (size_t i = 0; i < got.size(); ++i)
      if (std::memcmp(&got[i], &want[i], 4) != 0)
        return fmt::format("stage {} dp {}: {}[{}] = {} but step {} has {}", stage, dp_rank, kind_name(k),
                           sb + int64_t(i), got[i], step, want[i]);
  }
  return "";
}

}  // namespace fm::checkpoint::testing
