#include "runtime/checkpoint/reader.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "runtime/base/error.h"
#include "runtime/checkpoint/xxhash64.h"

namespace fm::checkpoint {
namespace fs = std::filesystem;

namespace {
const char* kDamaged =
    "the checkpoint is damaged or incomplete; resume from another one (fmckpt list OUTPUT_DIR shows them)";
}

CheckpointReader::CheckpointReader(const std::string& dir) : dir_(dir), manifest_(read_manifest(dir)) {
  const Manifest& m = manifest_;
  const std::string& mpath = m.path;
  if (m.files.empty()) throw InputError(mpath + ": files", "lists no shard file", kDamaged);

  for (size_t i = 0; i < m.files.size(); ++i) {
    const ShardRecord& r = m.files[i];
    const std::string at = fmt::format("{}: files[{}]", mpath, i);
    if (r.stage >= m.topology.pipe)
      throw InputError(at + ".stage",
                       fmt::format("stage {} is outside the topology's {} stages", r.stage, m.topology.pipe),
                       kDamaged);
    if (r.layer_begin != m.topology.stage_layers[size_t(r.stage)] ||
        r.layer_end != m.topology.stage_layers[size_t(r.stage) + 1])
      throw InputError(at + ".layers",
                       fmt::format("layers [{}, {}) are not those of stage {} in topology.stage_layers",
                                   r.layer_begin, r.layer_end, r.stage),
                       kDamaged);
    const std::string path = file_path(i);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw InputError(path, "missing (listed in " + mpath + ")", kDamaged);
    if (int64_t(st.st_size) != r.bytes)
      throw InputError(path,
                       fmt::format("is {} bytes, the manifest records {}{}", int64_t(st.st_size), r.bytes,
                                   int64_t(st.st_size) < r.bytes ? " (truncated)" : ""),
                       kDamaged);
    for (const Piece& p : file_pieces(i)) index_[p.name].push_back({i, p.begin, p.end});
  }
  for (auto& [name, list] : index_)
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.begin < b.begin; });

  // Coverage: every tensor of the model, every element.
  const model::ParamLayout full = full_layout(m.model);
  for (const model::ParamInfo& p : full.params) {
    auto it = index_.find(p.name);
    int64_t covered = 0;
    if (it != index_.end())
      for (const StoredPiece& s : it->second) {
        if (s.begin > covered) break;
        covered = std::max(covered, s.end);
      }
    if (covered < p.numel())
      throw InputError(mpath,
                       fmt::format("tensor '{}' elements [{}, {}) are in none of the listed shard files",
                                   p.name, covered, p.numel()),
                       kDamaged);
  }
  open_.resize(m.files.size());
  verified_.assign(m.files.size(), false);
}

CheckpointReader::~CheckpointReader() = default;

std::string CheckpointReader::file_path(size_t i) const {
  return (fs::path(dir_) / manifest_.files[i].file).string();
}

std::vector<Piece> CheckpointReader::file_pieces(size_t i) const {
  const ShardRecord& r = manifest_.files[i];
  const model::ParamLayout layout = model::make_param_layout(manifest_.model, r.layer_begin, r.layer_end);
  if (r.end > layout.total)
    throw InputError(fmt::format("{}: files[{}].range", manifest_.path, i),
                     fmt::format("[{}, {}) reaches past the {} elements of stage {}", r.begin, r.end,
                                 layout.total, r.stage),
                     kDamaged);
  return pieces_of_range(layout, r.begin, r.end);
}

void CheckpointReader::check_model(const model::LlamaConfig& run, bool shapes_only) const {
  if (auto d = model_config_difference(manifest_.model, run, shapes_only))
    throw InputError(
        manifest_.path + ": model_config." + d->field,
        fmt::format("the checkpoint's model has {} = {}, the run's model has {}", d->field, d->a, d->b),
        "this checkpoint belongs to another model: check --output_dir / --resume and --model_config");
}

const std::vector<CheckpointReader::StoredPiece>& CheckpointReader::pieces_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    throw InputError(manifest_.path, "holds no tensor '" + name + "'",
                     "the checkpoint belongs to another model");
  return it->second;
}

std::vector<size_t> CheckpointReader::files_for(const model::ParamLayout& layout, int64_t begin,
                                                int64_t end) const {
  std::set<size_t> files;
  for (const Piece& want : pieces_of_range(layout, begin, end, true))
    for (const StoredPiece& s : pieces_of(want.name))
      if (s.begin < want.end && want.begin < s.end) files.insert(s.file);
  return {files.begin(), files.end()};
}

void CheckpointReader::verify(const std::vector<size_t>& files) const {
  for (size_t i : files) {
    if (verified_[i]) continue;
    const ShardRecord& r = manifest_.files[i];
    const std::string path = file_path(i);
    const FileDigest d = digest_file(path);
    if (d.bytes != r.bytes)
      throw InputError(path, fmt::format("is {} bytes, the manifest records {}", d.bytes, r.bytes), kDamaged);
    if (d.checksum != r.checksum)
      throw InputError(path,
                       fmt::format("checksum mismatch: XXH64 {} but {} records {}", checksum_hex(d.checksum),
                                   manifest_.path, checksum_hex(r.checksum)),
                       kDamaged);
    verified_[i] = true;
  }
}

void CheckpointReader::verify_all() const {
  std::vector<size_t> all(manifest_.files.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  verify(all);
}

const model::io::SafetensorsFile& CheckpointReader::open_file(size_t i) const {
  if (open_[i]) return *open_[i];
  const ShardRecord& r = manifest_.files[i];
  auto f = std::make_unique<model::io::SafetensorsFile>(file_path(i));
  const auto& meta = f->metadata();
  auto it = meta.find("format");
  if (it == meta.end() || it->second != "fmengine-checkpoint-shard")
    throw InputError(f->path(), "is not an fmengine checkpoint shard (no __metadata__.format)", kDamaged);
  // The header must list exactly the pieces the manifest implies, as F32.
  size_t expected = 0;
  for (Kind kind : kAllKinds) {
    if (kind != Kind::Params && !r.optimizer_state) continue;
    for (const Piece& p : file_pieces(i)) {
      ++expected;
      const std::string key = piece_key(kind, p.name, p.begin, p.end);
      const model::io::TensorEntry* e = f->find(key);
      if (!e)
        throw InputError(f->path(), "lacks tensor '" + key + "' that " + manifest_.path + " implies",
                         kDamaged);
      if (e->dtype != kernels::DType::F32 || e->numel != p.size())
        throw InputError(f->path(), "tensor '" + key + "' is not " + std::to_string(p.size()) + " F32 values",
                         kDamaged);
    }
  }
  if (f->tensors().size() != expected)
    throw InputError(
        f->path(),
        fmt::format("holds {} tensors, {} implies {}", f->tensors().size(), manifest_.path, expected),
        kDamaged);
  open_[i] = std::move(f);
  return *open_[i];
}

void CheckpointReader::read(Kind kind, const std::string& name, int64_t begin, int64_t end,
                            float* dst) const {
  FM_CHECK(0 <= begin && begin <= end, "bad element range");
  if (kind != Kind::Params && !has_optimizer_state())
    throw InputError(manifest_.path, std::string("holds no optimizer state (") + kind_name(kind) + ")",
                     "it is a weights-only checkpoint: use it with --init_ckpt, not --resume");
  int64_t covered = begin;
  for (const StoredPiece& s : pieces_of(name)) {
    if (covered >= end) break;
    if (s.end <= covered) continue;
    if (s.begin > covered) break;
    const int64_t hi = std::min(end, s.end);
    const model::io::SafetensorsFile& f = open_file(s.file);
    const model::io::TensorEntry* e = f.find(piece_key(kind, name, s.begin, s.end));
    FM_CHECK(e != nullptr, "piece validated at open");
    std::memcpy(dst + (covered - begin), e->data + 4 * (covered - s.begin), size_t(hi - covered) * 4);
    covered = hi;
  }
  if (covered < end)
    throw InputError(
        manifest_.path,
        fmt::format("tensor '{}' elements [{}, {}) are in none of the shard files", name, covered, end),
        kDamaged);
}

void CheckpointReader::read_flat(Kind kind, const model::ParamLayout& layout, int64_t begin, int64_t end,
                                 float* dst) const {
  FM_CHECK(0 <= begin && begin <= end, "bad flat range");
  for (const Piece& p : pieces_of_range(layout, begin, end, true))
    read(kind, p.name, p.begin, p.end, dst + (p.flat - begin));
  if (end > layout.total) {
    const int64_t from = std::max(begin, layout.total);
    std::fill(dst + (from - begin), dst + (end - begin), 0.0f);
  }
}

}  // namespace fm::checkpoint
