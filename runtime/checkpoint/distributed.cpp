#include "runtime/checkpoint/distributed.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"
#include "runtime/checkpoint/file_ops.h"
#include "zero/zero_plan.h"

namespace fm::checkpoint {
namespace fs = std::filesystem;
using comm::Communicator;

namespace {

// Strings from `root` to every rank: total length, then the length-prefixed strings.
void broadcast_strings(Communicator& c, std::vector<std::string>& v, int root) {
  std::string packed;
  if (c.rank() == root)
    for (const auto& s : v) {
      const uint64_t n = s.size();
      packed.append(reinterpret_cast<const char*>(&n), 8);
      packed += s;
    }
  int64_t total = int64_t(packed.size());
  c.broadcast(&total, 1, comm::DType::I64, root);
  packed.resize(size_t(total));
  c.broadcast(packed.data(), packed.size(), comm::DType::U8, root);
  if (c.rank() == root) return;
  v.clear();
  for (size_t at = 0; at < packed.size();) {
    uint64_t n;
    std::memcpy(&n, packed.data() + at, 8);
    v.push_back(packed.substr(at + 8, n));
    at += 8 + n;
  }
}

// A shard record as fixed-size integers, for the all_gather.
constexpr int kRecordInts = 10;
enum Status : int64_t { kFailed = 0, kNothing = 1, kWritten = 2 };

void pack(const ShardRecord& r, int64_t* out) {
  out[1] = r.stage, out[2] = r.dp_rank, out[3] = r.layer_begin, out[4] = r.layer_end;
  out[5] = r.begin, out[6] = r.end, out[7] = r.optimizer_state, out[8] = r.bytes;
  std::memcpy(&out[9], &r.checksum, 8);
}

ShardRecord unpack(const int64_t* in) {
  ShardRecord r;
  r.stage = int(in[1]), r.dp_rank = int(in[2]), r.layer_begin = int(in[3]), r.layer_end = int(in[4]);
  r.begin = in[5], r.end = in[6], r.optimizer_state = in[7] != 0, r.bytes = in[8];
  std::memcpy(&r.checksum, &in[9], 8);
  r.file = shard_file_name(r.stage, r.dp_rank);
  return r;
}

std::string ranks_text(const Communicator& c, const std::vector<int>& group_ranks) {
  std::vector<std::string> parts;
  for (int r : group_ranks) parts.push_back(std::to_string(c.global_rank(r)));
  return join(parts, ",");
}

std::vector<std::string> error_fields(const InputError& e) { return {e.where(), e.problem(), e.hint()}; }

// Writing or verifying a large shard can legitimately take longer than a training collective,
// and the other ranks wait for it at the exchange: the world's timeout is raised to at least
// kIoTimeout while a save or resume runs. A rank that dies is still noticed at once (MPI ends the
// job; the Gloo backend's liveness check names the lost rank).
constexpr comm::Millis kIoTimeout{30 * 60 * 1000};

class IoTimeout {
 public:
  explicit IoTimeout(Communicator& c) : c_(c), saved_(c.timeout()) {
    c_.set_timeout(std::max(saved_, kIoTimeout));
  }
  ~IoTimeout() { c_.set_timeout(saved_); }
  IoTimeout(const IoTimeout&) = delete;
  IoTimeout& operator=(const IoTimeout&) = delete;

 private:
  Communicator& c_;
  comm::Millis saved_;
};

}  // namespace

ShardRange shard_range(int zero_stage, int dp_size, int dp_rank, int64_t stage_numel) {
  FM_CHECK(dp_size >= 1 && 0 <= dp_rank && dp_rank < dp_size, "bad data-parallel rank");
  if (zero_stage == 0) return {dp_rank == 0, 0, stage_numel};
  const zero::ZeroPartitioning part = zero::make_zero_partitioning(stage_numel, dp_size);
  return {true, part.begin(dp_rank), part.end(dp_rank)};
}

SaveResult save_checkpoint(Communicator& world, const SaveRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  const IoTimeout io_timeout(world);
  const bool leader = world.rank() == 0;
  const std::string root = checkpoints_root(req.output_dir);
  const std::string unchanged = "nothing was committed: the previous checkpoints and `latest` are unchanged";

  // 1. Rank 0 prepares the temporary directory; everyone learns its name (or the failure).
  std::vector<std::string> msg;
  if (leader) {
    try {
      SaveStart start = begin_save(root, req.step, unique_token());
      for (const auto& p : start.removed_leftovers) log::warn("removed {}, left by an interrupted save", p);
      msg = {"ok", start.tmp_dir};
    } catch (const std::exception& e) {
      msg = {"error", e.what()};
    }
  }
  broadcast_strings(world, msg, 0);
  if (msg[0] != "ok")
    throw RuntimeFault(fmt::format("checkpoint of step {} not saved: rank {}: {}; {}", req.step,
                                   world.global_rank(0), msg[1], unchanged));
  const std::string tmp_dir = msg[1];

  // 2. Every writing rank writes its shard.
  int64_t mine[kRecordInts] = {};
  std::string error;
  mine[0] = kNothing;
  if (req.writes) {
    try {
      pack(write_shard(tmp_dir, req.shard), mine);
      mine[0] = kWritten;
    } catch (const std::exception& e) {
      mine[0] = kFailed;
      error = e.what();
    }
  }

  // 3. The barrier: every rank learns every shard's record and status.
  std::vector<int64_t> all(size_t(kRecordInts) * size_t(world.size()));
  world.all_gather(mine, all.data(), kRecordInts, comm::DType::I64);
  std::vector<int> failed;
  SaveResult result;
  std::vector<ShardRecord> shards;
  for (int r = 0; r < world.size(); ++r) {
    const int64_t* rec = &all[size_t(r) * kRecordInts];
    if (rec[0] == kFailed) failed.push_back(r);
    if (rec[0] == kWritten) {
      shards.push_back(unpack(rec));
      result.bytes += shards.back().bytes;
    }
  }
  if (!failed.empty()) {
    std::vector<std::string> why = {error};
    broadcast_strings(world, why, failed.front());
    if (leader) abandon_save(tmp_dir);
    const std::string others =
        failed.size() > 1
            ? fmt::format(" (ranks {} failed too)", ranks_text(world, {failed.begin() + 1, failed.end()}))
            : "";
    throw RuntimeFault(fmt::format("checkpoint of step {} not saved: rank {}: {}{}; {}", req.step,
                                   world.global_rank(failed.front()), why[0], others, unchanged));
  }

  // 4. Rank 0 commits; everyone learns the outcome.
  if (leader) {
    try {
      CommitInput in;
      in.tmp_dir = tmp_dir;
      in.step = req.step;
      in.state = req.state;
      in.model = req.model;
      in.topology = req.topology;
      in.shards = shards;
      CommitOptions opt;
      opt.max_checkpoints = req.max_checkpoints;
      if (!req.keep.empty()) opt.keep.push_back(req.keep);
      CommitResult res = commit_save(in, opt);
      for (const auto& n : res.notes) log::warn("{}", n);
      for (const auto& p : res.removed)
        log::info("removed old checkpoint {} (--max_checkpoints {})", p, req.max_checkpoints);
      msg = {"ok", res.path};
      msg.insert(msg.end(), res.removed.begin(), res.removed.end());
    } catch (const std::exception& e) {
      abandon_save(tmp_dir);
      msg = {"error", e.what()};
    }
  }
  broadcast_strings(world, msg, 0);
  if (msg[0] != "ok")
    throw RuntimeFault(fmt::format("checkpoint of step {} not saved: rank {}: {}; {}", req.step,
                                   world.global_rank(0), msg[1], unchanged));
  result.path = msg[1];
  result.removed.assign(msg.begin() + 2, msg.end());
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

ResumeResult open_for_resume(Communicator& world, const ResumeRequest& req) {
  using runtime::ResumeMode;
  ResumeResult result;
  if (req.mode == ResumeMode::None) return result;
  FM_CHECK(req.model && req.layout, "resume needs the run's model and this rank's layout");
  const IoTimeout io_timeout(world);
  const bool leader = world.rank() == 0;
  const bool explicit_path = req.mode == ResumeMode::Path;

  // Rank 0's list of candidates.
  std::vector<std::string> order;
  std::vector<std::string> decision;  // {"fresh"} | {"error", where, what, hint} | {"try", path}
  std::string root;
  if (leader) {
    try {
      if (explicit_path) {
        order.push_back(resolve_checkpoint_dir(req.path, req.flag));
      } else {
        root = checkpoints_root(req.output_dir);
        if (fs::is_directory(root)) {
          ResumeCandidates c = resume_candidates(root);
          for (const auto& n : c.notes) log::warn("{}", n);
          for (const auto& e : c.order) order.push_back(e.path);
        }
      }
    } catch (const InputError& e) {
      decision = error_fields(e);
      decision.insert(decision.begin(), "error");
    }
  }

  std::unique_ptr<CheckpointReader> reader;
  size_t next = 0;
  for (;;) {
    if (leader && decision.empty()) {
      reader.reset();
      while (next < order.size() && !reader) {
        const std::string path = order[next++];
        try {
          auto r = std::make_unique<CheckpointReader>(path);
          if (!r->has_optimizer_state())
            throw InputError(r->manifest().path, "holds no optimizer state",
                             "a weights-only checkpoint: load it with --init_ckpt, not --resume");
          reader = std::move(r);
        } catch (const InputError& e) {
          if (explicit_path) {
            decision = {"error", e.where(), e.problem(), e.hint()};
            break;
          }
          log::warn("skipping checkpoint {}: {}", path, format_input_error(e));
          result.skipped.push_back(path + ": " + format_input_error(e));
        }
      }
      if (reader) {
        try {
          reader->check_model(*req.model, false);  // another model is an error in every mode
          decision = {"try", reader->dir()};
        } catch (const InputError& e) {
          decision = {"error", e.where(), e.problem(), e.hint()};
        }
      } else if (decision.empty()) {
        if (result.skipped.empty()) {
          decision = {"fresh"};
        } else {
          decision = {"error", root,
                      fmt::format("none of the {} checkpoint(s) can be used (see the warnings above)",
                                  result.skipped.size()),
                      "move the damaged ones away, resume from one with --resume PATH, or start over with "
                      "--resume none"};
        }
      }
    }
    broadcast_strings(world, decision, 0);
    if (decision[0] == "fresh") {
      if (leader && !explicit_path)
        log::info("no checkpoint in {}: starting from scratch", checkpoints_root(req.output_dir));
      return result;
    }
    if (decision[0] == "error") throw InputError(decision[1], decision[2], decision[3]);
    const std::string path = decision[1];

    // Every rank verifies the files it will read.
    int32_t ok = 1;
    std::vector<std::string> why;
    try {
      if (!reader) reader = std::make_unique<CheckpointReader>(path);
      const model::ParamLayout& layout = *req.layout;
      std::vector<size_t> files = reader->files_for(layout, 0, layout.total);
      const int64_t sb = std::min(req.state_begin, layout.total), se = std::min(req.state_end, layout.total);
      for (size_t f : reader->files_for(layout, sb, std::max(sb, se))) files.push_back(f);
      std::sort(files.begin(), files.end());
      files.erase(std::unique(files.begin(), files.end()), files.end());
      reader->verify(files);
    } catch (const InputError& e) {
      ok = 0;
      why = error_fields(e);
    }
    std::vector<int32_t> oks(size_t(world.size()));
    world.all_gather(&ok, oks.data(), 1, comm::DType::I32);
    const auto bad = std::find(oks.begin(), oks.end(), 0);
    if (bad == oks.end()) {
      result.reader = std::move(reader);
      if (leader) log::info("resuming from {} (step {})", path, result.reader->state().global_step);
      return result;
    }
    broadcast_strings(world, why, int(bad - oks.begin()));
    const InputError err(why[0], why[1], why[2]);
    if (explicit_path) throw err;
    reader.reset();
    decision.clear();
    if (leader) {
      log::warn("skipping checkpoint {}: {}", path, format_input_error(err));
      result.skipped.push_back(path + ": " + format_input_error(err));
    }
  }
}

void load_rank_state(const CheckpointReader& reader, const model::ParamLayout& layout, int64_t state_begin,
                     int64_t state_end, float* params, float* exp_avg, float* exp_avg_sq) {
  if (params) reader.read_flat(Kind::Params, layout, 0, layout.total, params);
  if (exp_avg) reader.read_flat(Kind::ExpAvg, layout, state_begin, state_end, exp_avg);
  if (exp_avg_sq) reader.read_flat(Kind::ExpAvgSq, layout, state_begin, state_end, exp_avg_sq);
}

}  // namespace fm::checkpoint
