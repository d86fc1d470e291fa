#include "model/io/hf_checkpoint.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::model::io {
namespace fs = std::filesystem;
namespace {

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::vector<int64_t> hf_shape(const ParamInfo& p, const HfSlice& s) {
  if (p.cols == 1) return {s.rows};
  return {s.rows, p.cols};
}

// Tensors the full model of `c` is made of, with their shapes.
std::map<std::string, std::vector<int64_t>> expected_tensors(const LlamaConfig& c) {
  std::map<std::string, std::vector<int64_t>> out;
  const ParamLayout full = make_param_layout(c, 0, int(c.num_hidden_layers) + 2);
  for (const auto& p : full.params)
    for (const auto& s : p.hf) out[s.hf_name] = hf_shape(p, s);
  return out;
}

bool ignorable(const std::string& name, const LlamaConfig& c) {
  const std::string inv = "rotary_emb.inv_freq";
  if (name.size() >= inv.size() && name.compare(name.size() - inv.size(), inv.size(), inv) == 0) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes text through a temporary name, so an interrupted export leaves no half file.
void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw RuntimeFault("cannot write " + tmp + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw RuntimeFault("cannot rename " + tmp + " to " + path + ": " + ec.message());
}

}  // namespace

// ---- import ------------------------------------------------------------------------------------------

HfCheckpoint::HfCheckpoint(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw InputError(dir, "not a directory", "give a Hugging Face model directory (config.json + *.safetensors)");
  config_ = load_llama_config(dir);

  const fs::path root(dir);
  const std::string index_path = (root / kIndexFile).string();
  const std::string single_path = (root / kSingleFile).string();
  // tensor name -> (file index in files_, file that named it)
  std::map<std::string, std::pair<size_t, std::string>> where;
  if (fs::exists(index_path, ec)) {
    const std::string text = read_text(index_path);
    rapidjson::Document doc;
    doc.Parse(text.c_str(), text.size());
    if (doc.HasParseError()) {
      LineCol lc = line_col_at(text, doc.GetErrorOffset());
      throw InputError(index_path + ":" + std::to_string(lc.line) + ":" + std::to_string(lc.col),
                       std::string("invalid JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()));
    }
    if (!doc.IsObject() || !doc.HasMember("weight_map") || !doc["weight_map"].IsObject())
      throw InputError(index_path, "no \"weight_map\" object", "a sharded checkpoint's index maps tensors to shards");
    std::map<std::string, size_t> shard_of_file;
    for (auto it = doc["weight_map"].MemberBegin(); it != doc["weight_map"].MemberEnd(); ++it) {
      const std::string tensor = it->name.GetString();
      if (!it->value.IsString())
        throw InputError(index_path + ": weight_map." + tensor, "expected a shard file name");
      const std::string shard = it->value.GetString();
      if (shard.empty() || fs::path(shard).is_absolute() || shard.find("..") != std::string::npos)
        throw InputError(index_path + ": weight_map." + tensor, "shard \"" + shard + "\" is not a file of the directory");
      auto found = shard_of_file.find(shard);
      if (found == shard_of_file.end()) {
        const std::string shard_path = (root / shard).string();
        if (!fs::exists(shard_path, ec))
          throw InputError(index_path + ": weight_map." + tensor, "shard " + shard_path + " does not exist",
                           "the checkpoint is incomplete: download every shard the index lists");
        files_.push_back(std::make_unique<SafetensorsFile>(shard_path));
        found = shard_of_file.emplace(shard, files_.size() - 1).first;
      }
      where[tensor] = {found->second, index_path};
    }
    // Every listed tensor must be in its shard; tensors a shard holds beyond the index are refused too.
    for (const auto& [tensor, at] : where) {
      if (!files_[at.first]->find(tensor))
        throw InputError(files_[at.first]->path(), "tensor '" + tensor + "' listed in " + index_path + " is missing",
                         "the shard does not match the index");
    }
    for (const auto& f : files_)
      for (const auto& t : f->tensors())
        if (!where.count(t.name) || files_[where[t.name].first].get() != f.get())
          throw InputError(f->path(), "tensor '" + t.name + "' is not listed for this shard in " + index_path,
                           "the shard does not match the index");
  } else if (fs::exists(single_path, ec)) {
    files_.push_back(std::make_unique<SafetensorsFile>(single_path));
    for (const auto& t : files_[0]->tensors()) where[t.name] = {0, single_path};
  } else {
    const bool pickle = fs::exists(root / "pytorch_model.bin", ec) || fs::exists(root / "pytorch_model.bin.index.json", ec);
    throw InputError(dir, "holds neither " + std::string(kSingleFile) + " nor " + kIndexFile,
                     pickle ? "convert the PyTorch pickle checkpoint to safetensors (save_pretrained does by default)"
                            : "give a Hugging Face model directory with safetensors weights");
  }

  const auto expected = expected_tensors(config_);
  const std::string listing = fs::exists(index_path, ec) ? index_path : single_path;
  for (const auto& [name, shape] : expected) {
    auto it = where.find(name);
    if (it == where.end())
      throw InputError(listing, "tensor '" + name + "' is missing",
                       "the checkpoint does not hold a LLaMA model of " + config_.source + "'s sizes");
    const SafetensorsFile& f = *files_[it->second.first];
    const TensorEntry* e = f.find(name);
    if (e->shape != shape)
      throw InputError(f.path(), "tensor '" + name + "' has shape " + shape_text(e->shape) + ", expected " +
                                     shape_text(shape) + " from " + config_.source,
                       "config.json and the weights disagree");
    tensors_.push_back({name, {&f, e}});
  }
  for (const auto& [name, at] : where) {
    if (expected.count(name) || ignorable(name, config_)) continue;
    std::vector<std::string> names;
    for (const auto& kv : expected) names.push_back(kv.first);
    throw InputError(files_[at.first]->path(), "unexpected tensor '" + name + "'",
                     nearest_word(name, names).empty()
                         ? "it is not part of a LlamaForCausalLM of " + config_.source
                         : "did you mean '" + nearest_word(name, names) + "'? (it is not part of a LlamaForCausalLM)");
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

HfCheckpoint::~HfCheckpoint() = default;

HfCheckpoint::Located HfCheckpoint::locate(const std::string& hf_name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), hf_name,
                             [](const auto& a, const std::string& n) { return a.first < n; });
  FM_CHECK(it != tensors_.end() && it->first == hf_name, "tensor not validated: " + hf_name);
  return it->second;
}

void HfCheckpoint::load(const ParamLayout& layout, float* host_params) const {
  for (const auto& p : layout.params) {
    for (const auto& s : p.hf) {
      const Located at = locate(s.hf_name);
      FM_CHECK(at.entry->numel == s.rows * p.cols, "layout does not match the checkpoint's config");
      at.file->read_f32(*at.entry, host_params + p.offset + s.row_begin * p.cols);
    }
  }
}

// ---- export ------------------------------------------------------------------------------------------

std::vector<TensorToWrite> hf_tensors(const ParamLayout& layout, const float* params, DType dtype) {
  std::vector<TensorToWrite> out;
  for (const auto& p : layout.params) {
    if (p.replica) continue;
    for (const auto& s : p.hf)
      out.push_back({s.hf_name, dtype, hf_shape(p, s), params + p.offset + s.row_begin * p.cols});
  }
  return out;
}

DType export_dtype(const std::string& name, const std::string& where) {
  if (name == "float32") return DType::F32;
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  throw InputError(where, "dtype \"" + name + "\" is not supported", "float32, bfloat16 or float16");
}

void export_hf_checkpoint(const std::string& dir, const LlamaConfig& c, const float* full_params,
                          const HfExportOptions& options) {
  const DType dtype = export_dtype(options.dtype, "export dtype");
  FM_CHECK(options.max_shard_bytes > 0, "max_shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RuntimeFault("cannot create " + dir + ": " + ec.message());
  const fs::path root(dir);

  const ParamLayout full = make_param_layout(c, 0, int(c.num_hidden_layers) + 2);
  const std::vector<TensorToWrite> tensors = hf_tensors(full, full_params, dtype);

  // Greedy shards in model order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<TensorToWrite>> shards(1);
  int64_t in_shard = 0, total = 0;
  for (const auto& t : tensors) {
    const int64_t bytes = stored_bytes(t);
    if (in_shard > 0 && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes;
    total += bytes;
  }

  // Remove the weights of an earlier export so the directory describes one model.
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    const bool ours = name == kSingleFile || name == kIndexFile ||
                      (name.rfind("model-", 0) == 0 && name.size() > 12 &&
                       name.compare(name.size() - 12, 12, ".safetensors") == 0);
    if (ours) fs::remove(entry.path(), ec);
  }

  write_text_atomic((root / "config.json").string(), to_hf_config_json(c, options.dtype));
  {
    rapidjson::StringBuffer buf;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
    w.SetIndent(' ', 2);
    w.StartObject();
    w.Key("_from_model_config");
    w.Bool(true);
    if (c.bos_token_id >= 0) {
      w.Key("bos_token_id");
      w.Int64(c.bos_token_id);
    }
    if (c.eos_token_id >= 0) {
      w.Key("eos_token_id");
      w.Int64(c.eos_token_id);
    }
    w.EndObject();
    write_text_atomic((root / "generation_config.json").string(), std::string(buf.GetString()) + "\n");
  }

  if (shards.size() == 1) {
    write_safetensors((root / kSingleFile).string(), shards[0]);
    return;
  }
  const size_t n = shards.size();
  rapidjson::StringBuffer buf;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> w(buf);
  w.SetIndent(' ', 2);
  w.StartObject();
  w.Key("metadata");
  w.StartObject();
  w.Key("total_size");
  w.Int64(total);
  w.EndObject();
  w.Key("weight_map");
  w.StartObject();
  for (size_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, n);
    write_safetensors((root / name).string(), shards[i]);
    for (const auto& t : shards[i]) {
      w.Key(t.name.c_str());
      w.String(name);
    }
  }
  w.EndObject();
  w.EndObject();
  write_text_atomic((root / kIndexFile).string(), std::string(buf.GetString()) + "\n");
}

}  // namespace fm::model::io
