// The checkpoint directory protocol: atomic saves, `latest`, retention, and finding checkpoints.
//
//   <output_dir>/checkpoints/
//     latest                        the tag of the newest save, replaced atomically
//     global_step<N>/               one complete checkpoint: shards + config.json + manifest.json
//     global_step<N>.tmp-<token>/   a save in progress (or killed): never read, removed by the next save
//
// A save (docs/checkpoints.md): rank 0 calls begin_save (removes leftovers of killed saves and
// creates the temporary directory); every writing rank writes its shard there (shard_writer.h);
// after a barrier rank 0 calls commit_save, which writes config.json and the manifest (each to a
// temporary name, fsynced, renamed), fsyncs the directory, renames it to global_step<N>, fsyncs
// the parent, replaces `latest` (temporary file, fsync, rename, fsync) and applies retention.
// Until the rename nothing of the save is visible; after it the checkpoint is complete. A process
// killed at any point leaves the previous checkpoints and `latest` as they were (or `latest`
// naming a complete checkpoint).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"
#include "runtime/checkpoint/manifest.h"

namespace fm::checkpoint {

// <output_dir>/checkpoints
std::string checkpoints_root(const std::string& output_dir);
inline constexpr const char* kLatestFile = "latest";

// Rank 0, before the shards: creates `root`, removes what killed saves left (names holding
// ".tmp-"), and creates <root>/global_step<step>.tmp-<token>. Returns that directory.
struct SaveStart {
  std::string tmp_dir;
  std::vector<std::string> removed_leftovers;
};
SaveStart begin_save(const std::string& root, int64_t step, const std::string& token);

struct CommitInput {
  std::string tmp_dir;  // from begin_save
  int64_t step = 0;
  TrainState state;
  const model::LlamaConfig* model = nullptr;
  Topology topology;
  std::vector<ShardRecord> shards;  // of every writing rank
};

struct CommitOptions {
  int max_checkpoints = 0;        // keep the N newest complete checkpoints; 0 = keep all
  std::vector<std::string> keep;  // checkpoint directories retention never removes (the resumed one)
  // Called after each step of the commit with its name ("manifest_written", "directory_renamed",
  // "latest_written", "retention_done"): lets tests end the process there.
  std::function<void(std::string_view)> after_step;
};

struct CommitResult {
  std::string path;                  // <root>/global_step<N>
  std::vector<std::string> removed;  // checkpoints removed by retention
  std::vector<std::string> notes;    // retention problems (the save itself succeeded)
};

// Rank 0, after every shard is written. Checks the shards form a complete checkpoint (the same
// checks a reader makes, checksums aside) before anything becomes visible. RuntimeFault on any
// failure; the temporary directory is then left for abandon_save / the next begin_save.
CommitResult commit_save(const CommitInput& in, const CommitOptions& options = {});

// Removes a failed save's temporary directory (best effort).
void abandon_save(const std::string& tmp_dir);

struct CheckpointEntry {
  std::string tag;
  int64_t step = 0;
  std::string path;
};
// The global_step<N> directories of `root`, newest step first (contents not checked).
std::vector<CheckpointEntry> list_checkpoints(const std::string& root);

struct LatestInfo {
  bool exists = false;
  std::string tag;      // its content, trimmed
  std::string problem;  // why it cannot be used ("" when it names a directory of root)
};
LatestInfo read_latest(const std::string& root);

// The order in which --resume auto tries the checkpoints of `root`: the one `latest` names, then
// older ones by step; without a usable `latest`, all by step. `notes` says what was passed over
// (checkpoints newer than `latest`, a damaged `latest`).
struct ResumeCandidates {
  std::vector<CheckpointEntry> order;
  std::vector<std::string> notes;
};
ResumeCandidates resume_candidates(const std::string& root);

// A checkpoint directory from what a user gave (--resume PATH, --init_ckpt, fmckpt): a checkpoint
// directory (holding manifest.json), a directory holding `latest` (its target), or an output
// directory holding checkpoints/latest. InputError naming `where` and the path otherwise.
std::string resolve_checkpoint_dir(const std::string& path, const std::string& where);
// True when resolve_checkpoint_dir would find an fmengine checkpoint (no content checks).
bool is_fm_checkpoint(const std::string& path);

}  // namespace fm::checkpoint
