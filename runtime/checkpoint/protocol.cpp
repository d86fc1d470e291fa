#include "runtime/checkpoint/protocol.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "fm_build_config.h"
#include "runtime/base/error.h"
#include "runtime/checkpoint/file_ops.h"
#include "runtime/checkpoint/reader.h"

namespace fm::checkpoint {
namespace fs = std::filesystem;
namespace {

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

bool is_leftover(const std::string& name) { return name.find(".tmp-") != std::string::npos; }

std::string canonical_or_self(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c.string();
}

// Moves `final_dir` out of the way and `tmp` into its place. Where the file system can, the two
// are swapped atomically, so `final_dir` never disappears.
void replace_dir(const std::string& tmp, const std::string& final_dir, const std::string& token) {
  std::error_code ec;
  if (!fs::exists(final_dir, ec)) {
    if (::rename(tmp.c_str(), final_dir.c_str()) != 0)
      throw RuntimeFault("cannot rename " + tmp + " to " + final_dir + ": " + std::strerror(errno));
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0) {
    abandon_save(tmp);  // now holds the replaced checkpoint
    return;
  }
  const std::string old = final_dir + ".tmp-replaced-" + token;
  if (::rename(final_dir.c_str(), old.c_str()) != 0)
    throw RuntimeFault("cannot move " + final_dir + " aside: " + std::strerror(errno));
  if (::rename(tmp.c_str(), final_dir.c_str()) != 0)
    throw RuntimeFault("cannot rename " + tmp + " to " + final_dir + ": " + std::strerror(errno));
  abandon_save(old);
}

}  // namespace

std::string checkpoints_root(const std::string& output_dir) {
  return (fs::path(output_dir) / "checkpoints").string();
}

SaveStart begin_save(const std::string& root, int64_t step, const std::string& token) {
  SaveStart out;
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw RuntimeFault("cannot create " + root + ": " + ec.message());
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!is_leftover(name)) continue;
    std::string why;
    if (remove_tree(e.path().string(), &why)) out.removed_leftovers.push_back(e.path().string());
  }
  out.tmp_dir = (fs::path(root) / (step_tag(step) + ".tmp-" + token)).string();
  fs::create_directory(out.tmp_dir, ec);
  if (ec) throw RuntimeFault("cannot create " + out.tmp_dir + ": " + ec.message());
  return out;
}

void abandon_save(const std::string& tmp_dir) { remove_tree(tmp_dir); }

CommitResult commit_save(const CommitInput& in, const CommitOptions& options) {
  FM_CHECK(in.model != nullptr, "commit needs the model config");
  auto step_done = [&](std::string_view name) {
    if (options.after_step) options.after_step(name);
  };
  const fs::path tmp(in.tmp_dir);
  const fs::path root = tmp.parent_path();
  const std::string tag = step_tag(in.step);
  const std::string token = tmp.filename().string().substr(tmp.filename().string().find(".tmp-") + 5);

  Manifest m;
  m.tag = tag;
  m.state = in.state;
  m.state.global_step = in.step;
  m.model_config_json = model::to_hf_config_json(*in.model, in.model->torch_dtype);
  m.model = *in.model;
  m.topology = in.topology;
  m.files = in.shards;
  std::sort(m.files.begin(), m.files.end(), [](const auto& a, const auto& b) {
    return std::tie(a.stage, a.dp_rank) < std::tie(b.stage, b.dp_rank);
  });
  m.created = utc_now();
  m.fmengine_version = FM_VERSION;

  write_file_atomic((tmp / "config.json").string(), m.model_config_json);
  write_file_atomic((tmp / kManifestFile).string(), manifest_to_json(m));  // fsyncs the directory too
  // What a reader will check (files, sizes, coverage), before the checkpoint becomes visible.
  try {
    CheckpointReader check(in.tmp_dir);
  } catch (const InputError& e) {
    throw RuntimeFault("the shards of step " + std::to_string(in.step) +
                       " do not form a complete checkpoint: " + format_input_error(e));
  }
  step_done("manifest_written");

  CommitResult out;
  out.path = (root / tag).string();
  replace_dir(in.tmp_dir, out.path, token);
  fsync_dir(root.string());
  step_done("directory_renamed");

  write_file_atomic((root / kLatestFile).string(), tag + "\n");
  step_done("latest_written");

  if (options.max_checkpoints > 0) {
    std::vector<std::string> keep = {canonical_or_self(out.path)};
    for (const auto& k : options.keep) keep.push_back(canonical_or_self(k));
    int kept = 0;
    for (const CheckpointEntry& e : list_checkpoints(root.string())) {
      std::error_code ec;
      if (!fs::exists(fs::path(e.path) / kManifestFile, ec))
        continue;  // not a complete checkpoint: not ours to judge
      const bool protected_dir = std::find(keep.begin(), keep.end(), canonical_or_self(e.path)) != keep.end();
      if (kept < options.max_checkpoints) {
        ++kept;
        continue;
      }
      if (protected_dir) continue;
      // Renamed to a leftover name first: a removal cut short is cleaned by the next save and
      // never looks like a checkpoint.
      const std::string doomed = e.path + ".tmp-removing-" + token;
      if (::rename(e.path.c_str(), doomed.c_str()) != 0) {
        out.notes.push_back("cannot remove old checkpoint " + e.path + ": " + std::strerror(errno));
        continue;
      }
      std::string why;
      if (!remove_tree(doomed, &why)) out.notes.push_back("cannot remove " + doomed + ": " + why);
      out.removed.push_back(e.path);
    }
    fsync_dir(root.string());
  }
  step_done("retention_done");
  return out;
}

std::vector<CheckpointEntry> list_checkpoints(const std::string& root) {
  std::vector<CheckpointEntry> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    auto step = parse_step_tag(name);
    if (!step || !e.is_directory(ec)) continue;
    out.push_back({name, *step, e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.step > b.step; });
  return out;
}

LatestInfo read_latest(const std::string& root) {
  LatestInfo info;
  const fs::path path = fs::path(root) / kLatestFile;
  std::error_code ec;
  if (!fs::exists(path, ec)) return info;
  info.exists = true;
  try {
    info.tag = trim(read_file(path.string()));
  } catch (const InputError& e) {
    info.problem = path.string() + " is unreadable: " + e.problem();
    return info;
  }
  if (info.tag.empty() || info.tag.find('/') != std::string::npos || info.tag == "." || info.tag == "..")
    info.problem = path.string() + " does not hold a checkpoint tag";
  else if (!fs::is_directory(fs::path(root) / info.tag, ec))
    info.problem = path.string() + " names " + info.tag + ", which does not exist";
  return info;
}

ResumeCandidates resume_candidates(const std::string& root) {
  ResumeCandidates out;
  const std::vector<CheckpointEntry> all = list_checkpoints(root);
  const LatestInfo latest = read_latest(root);
  if (latest.exists && latest.problem.empty()) {
    const auto latest_step = parse_step_tag(latest.tag);
    out.order.push_back({latest.tag, latest_step.value_or(-1), (fs::path(root) / latest.tag).string()});
    for (const auto& e : all) {
      if (e.tag == latest.tag) continue;
      if (latest_step && e.step > *latest_step) {
        out.notes.push_back(
            fmt::format("{} is newer than the checkpoint {} names ({}) and is not used: `latest` "
                        "was not updated after it (an interrupted save, or a run resumed from an older "
                        "checkpoint); pass --resume {} to use it",
                        e.path, (fs::path(root) / kLatestFile).string(), latest.tag, e.path));
        continue;
      }
      out.order.push_back(e);
    }
    return out;
  }
  if (latest.exists)
    out.notes.push_back(latest.problem + "; choosing by step number");
  else if (!all.empty())
    out.notes.push_back("no " + (fs::path(root) / kLatestFile).string() + "; choosing by step number");
  out.order = all;
  return out;
}

std::string resolve_checkpoint_dir(const std::string& path, const std::string& where) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::exists(p, ec)) throw InputError(where, path + " does not exist");
  if (!fs::is_directory(p, ec))
    throw InputError(where, path + " is not a directory",
                     "give a checkpoint directory (holding manifest.json)");
  if (fs::exists(p / kManifestFile, ec)) return p.string();
  for (const fs::path& root : {p, p / "checkpoints"}) {
    if (!fs::exists(root / kLatestFile, ec)) continue;
    const LatestInfo latest = read_latest(root.string());
    if (!latest.problem.empty())
      throw InputError(where, latest.problem,
                       "give the checkpoint directory itself (e.g. .../checkpoints/global_step100)");
    return (root / latest.tag).string();
  }
  if (parse_step_tag(p.filename().string()) || is_leftover(p.filename().string()))
    throw InputError(where, path + " holds no " + kManifestFile,
                     "an incomplete checkpoint (its save was interrupted): use an earlier one");
  throw InputError(where, path + " is not an fmengine checkpoint",
                   "give a checkpoint directory (holding manifest.json), or a directory holding `latest`");
}

bool is_fm_checkpoint(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (!fs::is_directory(p, ec)) return false;
  return fs::exists(p / kManifestFile, ec) || fs::exists(p / kLatestFile, ec) ||
         fs::exists(p / "checkpoints" / kLatestFile, ec);
}

}  // namespace fm::checkpoint
