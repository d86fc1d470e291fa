// fmckpt: inspects, checks and converts fmengine checkpoints (docs/checkpoints.md).
//
//   fmckpt list DIR                       the checkpoints of an output or checkpoints directory
//   fmckpt inspect DIR                    state, layout, tensors, files; verifies every checksum
//   fmckpt consolidate DIR OUT.safetensors [--optimizer]
//   fmckpt export-hf DIR OUTDIR [--dtype float32|bfloat16|float16] [--max_shard_size 5GB]
//                                       [--tokenizer PATH]
// DIR is a checkpoint directory, or a directory holding `latest` (its target is used), or an
// output directory holding checkpoints/latest. Exit codes: 0 fine, 2 bad input (a bad flag, a
// damaged or incomplete checkpoint: the message names the file), 1 a failure while writing.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/checkpoint/export.h"
#include "runtime/checkpoint/protocol.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/xxhash64.h"

namespace {
namespace fs = std::filesystem;
using namespace fm::checkpoint;

const char* kUsage =
    "usage: fmckpt list DIR\n"
    "       fmckpt inspect DIR\n"
    "       fmckpt consolidate DIR OUT.safetensors [--optimizer]\n"
    "       fmckpt export-hf DIR OUTDIR [--dtype float32|bfloat16|float16] [--max_shard_size 5GB] "
    "[--tokenizer PATH]\n"
    "DIR: a checkpoint directory (global_step<N>), or a directory holding `latest`, or an output "
    "directory.\n";

// Positional arguments and --flag values of one command; unknown flags are InputErrors.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
};

Args parse_args(const std::string& command, const std::vector<std::string>& argv,
                const std::vector<std::string>& valued, const std::vector<std::string>& switches,
                size_t npositional) {
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      a.positional.push_back(arg);
      continue;
    }
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    const bool is_valued = std::find(valued.begin(), valued.end(), arg) != valued.end();
    const bool is_switch = std::find(switches.begin(), switches.end(), arg) != switches.end();
    if (!is_valued && !is_switch) {
      std::vector<std::string> all = valued;
      all.insert(all.end(), switches.begin(), switches.end());
      throw fm::InputError(arg, "unknown flag of fmckpt " + command, fm::suggestion_hint(arg, all));
    }
    if (a.flags.count(arg)) throw fm::InputError(arg, "given twice");
    if (is_valued && !has_value) {
      if (i + 1 >= argv.size()) throw fm::InputError(arg, "needs a value");
      value = argv[++i];
    }
    a.flags[arg] = is_valued ? value : "true";
  }
  if (a.positional.size() != npositional)
    throw fm::InputError("fmckpt " + command,
                         fmt::format("takes {} argument(s), got {}", npositional, a.positional.size()),
                         kUsage);
  return a;
}

std::string layer_name(const fm::model::LlamaConfig& c, int layer) {
  if (layer == 0) return "embedding";
  if (layer == c.num_hidden_layers + 1) return "head";
  return "layer " + std::to_string(layer - 1);
}

int cmd_list(const Args& a) {
  const fs::path dir(a.positional[0]);
  std::error_code ec;
  const fs::path root = fs::exists(dir / "checkpoints", ec) ? dir / "checkpoints" : dir;
  const auto entries = list_checkpoints(root.string());
  const LatestInfo latest = read_latest(root.string());
  if (entries.empty())
    throw fm::InputError(root.string(), "holds no checkpoint (global_step<N> directories)");
  fmt::print("checkpoints in {} (latest: {})\n", root.string(),
             latest.exists ? (latest.problem.empty() ? latest.tag : "unusable: " + latest.problem) : "none");
  for (const auto& e : entries) {
    std::string status;
    try {
      CheckpointReader r(e.path);
      status = fmt::format("complete | {} files, {} | {}optimizer state | pipe {} dp {} zero {}",
                           r.manifest().files.size(), fm::human_bytes([&] {
                             double b = 0;
                             for (const auto& f : r.manifest().files) b += double(f.bytes);
                             return b;
                           }()),
                           r.has_optimizer_state() ? "" : "no ", r.manifest().topology.pipe,
                           r.manifest().topology.dp, r.manifest().topology.zero_stage);
    } catch (const fm::InputError& err) {
      status = "UNUSABLE: " + fm::format_input_error(err);
    }
    fmt::print("  {:<20} {}{}\n", e.tag, status, latest.tag == e.tag ? "  <- latest" : "");
  }
  std::printf("(checksums are not verified here: fmckpt inspect DIR verifies them)\n");
  return 0;
}

int cmd_inspect(const Args& a) {
  const std::string dir = resolve_checkpoint_dir(a.positional[0], "fmckpt inspect");
  CheckpointReader r(dir);
  const Manifest& m = r.manifest();
  const TrainState& s = m.state;
  const fm::model::LlamaConfig& c = m.model;
  fmt::print("checkpoint {}\n", dir);
  fmt::print("  tag {} | created {} | fmengine {}\n", m.tag, m.created, m.fmengine_version);
  fmt::print("  global_step {} | optimizer_steps {} | scheduler_t {} | skipped_steps {}\n", s.global_step,
             s.optimizer_steps, s.scheduler_t, s.skipped_steps);
  fmt::print("  loader {}\n", s.loader_json.empty() ? "none" : s.loader_json);
  fmt::print("  rng {}\n", s.rng_json.empty() ? "none" : s.rng_json);
  if (s.loss_scaler)
    fmt::print("  loss_scaler scale {} | cur_iter {} | last_overflow_iter {} | cur_hysteresis {}\n",
               s.loss_scaler->scale, s.loss_scaler->cur_iter, s.loss_scaler->last_overflow_iter,
               s.loss_scaler->cur_hysteresis);
  else
    fmt::print("  loss_scaler none\n");
  fmt::print("  config_hash {} | tokenizer {}\n", s.config_hash.empty() ? "none" : s.config_hash,
             s.tokenizer.empty() ? "none" : s.tokenizer);
  if (!s.extra_json.empty()) fmt::print("  extra {}\n", s.extra_json);
  fmt::print(
      "  model: hidden {} | layers {} | heads {} (kv {}) | head_dim {} | ffn {} | vocab {} | tied {}\n",
      c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
      c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? "yes" : "no");
  std::vector<std::string> cuts;
  for (int b : m.topology.stage_layers) cuts.push_back(std::to_string(b));
  fmt::print("  written under: pipe {} | dp {} | zero stage {} | world {} | stage layer cuts {}\n",
             m.topology.pipe, m.topology.dp, m.topology.zero_stage, m.topology.world, fm::join(cuts, ","));
  fmt::print("  optimizer state (exp_avg, exp_avg_sq): {}\n", r.has_optimizer_state() ? "yes" : "no");

  const fm::model::ParamLayout full = full_layout(c);
  fmt::print("tensors: {} with {} parameters ({} each kind, fp32)\n", full.params.size(), full.total,
             fm::human_bytes(4.0 * double(full.total)));
  for (const auto& p : full.params)
    fmt::print("  {:<34} {:<16} {:>12}  {:>10}  ({})\n", p.name,
               p.cols == 1 ? fmt::format("[{}]", p.rows) : fmt::format("[{}, {}]", p.rows, p.cols), p.numel(),
               fm::human_bytes(4.0 * double(p.numel())), layer_name(c, p.layer));

  double total = 0;
  for (const auto& f : m.files) total += double(f.bytes);
  fmt::print("files: {} ({})\n", m.files.size(), fm::human_bytes(total));
  const fm::InputError* first_bad = nullptr;
  std::vector<fm::InputError> bad;
  bad.reserve(m.files.size());
  for (size_t i = 0; i < m.files.size(); ++i) {
    const ShardRecord& f = m.files[i];
    std::string status = "ok";
    try {
      r.verify({i});
    } catch (const fm::InputError& e) {
      bad.push_back(e);
      status = "DAMAGED: " + e.problem();
    }
    fmt::print("  {}  stage {} dp {} | layers [{}, {}) | range [{}, {}) | {} | xxh64 {} {}\n", f.file,
               f.stage, f.dp_rank, f.layer_begin, f.layer_end, f.begin, f.end,
               fm::human_bytes(double(f.bytes)), checksum_hex(f.checksum), status);
  }
  if (!bad.empty()) first_bad = &bad.front();
  if (first_bad) {
    fmt::print("{} of {} files damaged\n", bad.size(), m.files.size());
    throw *first_bad;
  }
  fmt::print("checksums: all {} files verified\n", m.files.size());
  return 0;
}

int cmd_consolidate(const Args& a) {
  CheckpointReader r(resolve_checkpoint_dir(a.positional[0], "fmckpt consolidate"));
  consolidate(r, a.positional[1], a.flags.count("--optimizer") > 0);
  fmt::print("wrote {} ({} tensors of step {}{})\n", a.positional[1], full_layout(r.model()).params.size(),
             r.state().global_step, a.flags.count("--optimizer") ? ", with optimizer state" : "");
  return 0;
}

int cmd_export_hf(const Args& a) {
  CheckpointReader r(resolve_checkpoint_dir(a.positional[0], "fmckpt export-hf"));
  HfExport how;
  if (auto it = a.flags.find("--dtype"); it != a.flags.end()) {
    fm::model::io::export_dtype(it->second, "--dtype");  // validates before any work
    how.options.dtype = it->second;
  }
  if (auto it = a.flags.find("--max_shard_size"); it != a.flags.end())
    how.options.max_shard_bytes = parse_size(it->second, "--max_shard_size");
  if (auto it = a.flags.find("--tokenizer"); it != a.flags.end()) how.tokenizer = it->second;
  for (const auto& n : export_hf(r, a.positional[1], how)) fmt::print("{}\n", n);
  fmt::print("exported step {} to {} ({})\n", r.state().global_step, a.positional[1], how.options.dtype);
  return 0;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? fm::kExitInputError : 0;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "list") return cmd_list(parse_args(command, args, {}, {}, 1));
  if (command == "inspect") return cmd_inspect(parse_args(command, args, {}, {}, 1));
  if (command == "consolidate") return cmd_consolidate(parse_args(command, args, {}, {"--optimizer"}, 2));
  if (command == "export-hf")
    return cmd_export_hf(parse_args(command, args, {"--dtype", "--max_shard_size", "--tokenizer"}, {}, 2));
  throw fm::InputError("fmckpt " + command, "unknown command",
                       fm::suggestion_hint(command, {"list", "inspect", "consolidate", "export-hf"}));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "fmckpt: %s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fmckpt: %s\n", e.what());
    return fm::kExitRuntimeFault;
  }
}
