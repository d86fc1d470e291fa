// Reading a checkpoint under any layout.
//
// Opening validates what is cheap to validate, before any tensor is read: the manifest parses,
// every listed shard file exists with the recorded size, the files' layer ranges agree with the
// recorded topology, and together they cover every tensor of the model (parameters, and the Adam
// moments when the checkpoint has them). Checksums cost a pass over the data, so they are checked
// by verify(), for the files a caller is about to read (each rank verifies what it reads; see
// docs/checkpoints.md). A shard file is mapped when first needed; its header must list exactly
// the pieces the manifest implies.
//
// Every problem is an InputError naming the file (the manifest, or the shard) and what is wrong.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/io/safetensors.h"
#include "model/param_layout.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/pieces.h"

namespace fm::checkpoint {

class CheckpointReader {
 public:
  // `dir` is one checkpoint directory (holding manifest.json); see resolve_checkpoint_dir().
  explicit CheckpointReader(const std::string& dir);
  ~CheckpointReader();
  CheckpointReader(const CheckpointReader&) = delete;
  CheckpointReader& operator=(const CheckpointReader&) = delete;

  const std::string& dir() const { return dir_; }
  const Manifest& manifest() const { return manifest_; }
  const TrainState& state() const { return manifest_.state; }
  const model::LlamaConfig& model() const { return manifest_.model; }
  bool has_optimizer_state() const { return manifest_.has_optimizer_state(); }
  // Path of file i of manifest().files.
  std::string file_path(size_t i) const;

  // InputError naming the manifest and the first differing config.json field when the run's
  // model is not the checkpoint's (shapes_only: only what decides the tensors).
  void check_model(const model::LlamaConfig& run, bool shapes_only) const;

  // Indexes (into manifest().files) of the files holding any element of [begin, end) of `layout`,
  // a stage layout of this model.
  std::vector<size_t> files_for(const model::ParamLayout& layout, int64_t begin, int64_t end) const;
  // Checks the XXH64 of the given files (each at most once per reader); InputError naming the
  // first damaged file.
  void verify(const std::vector<size_t>& files) const;
  void verify_all() const;

  // Elements [begin, end) of tensor `name` into dst (end - begin floats).
  void read(Kind kind, const std::string& name, int64_t begin, int64_t end, float* dst) const;
  // Elements [begin, end) of `layout`'s flat buffer into dst (end - begin floats): tied replicas
  // from their owner's values, elements past layout.total (ZeRO padding) as zeros.
  void read_flat(Kind kind, const model::ParamLayout& layout, int64_t begin, int64_t end, float* dst) const;

 private:
  struct StoredPiece {
    size_t file;
    int64_t begin, end;
  };
  const model::io::SafetensorsFile& open_file(size_t i) const;
  const std::vector<StoredPiece>& pieces_of(const std::string& name) const;
  std::vector<Piece> file_pieces(size_t i) const;

  std::string dir_;
  Manifest manifest_;
  std::map<std::string, std::vector<StoredPiece>> index_;  // tensor -> pieces sorted by begin
  mutable std::vector<std::unique_ptr<model::io::SafetensorsFile>> open_;
  mutable std::vector<bool> verified_;
};

}  // namespace fm::checkpoint
