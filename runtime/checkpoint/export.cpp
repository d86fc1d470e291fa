#include "runtime/checkpoint/export.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <filesystem>

#include "model/io/safetensors.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "runtime/checkpoint/protocol.h"

namespace fm::checkpoint {
namespace fs = std::filesystem;

model::LlamaConfig checkpoint_model_config(const std::string& path, const std::string& where) {
  return read_manifest(resolve_checkpoint_dir(path, where)).model;
}

void load_weights(const std::string& path, const model::LlamaConfig& run_model,
                  const model::ParamLayout& layout, float* host_params, const std::string& where) {
  CheckpointReader reader(resolve_checkpoint_dir(path, where));
  reader.check_model(run_model, true);
  reader.verify(reader.files_for(layout, 0, layout.total));
  reader.read_flat(Kind::Params, layout, 0, layout.total, host_params);
}

std::vector<float> read_full_params(const CheckpointReader& reader) {
  const model::ParamLayout full = full_layout(reader.model());
  std::vector<float> params(size_t(full.total));
  reader.read_flat(Kind::Params, full, 0, full.total, params.data());
  return params;
}

void consolidate(const CheckpointReader& reader, const std::string& out_file, bool with_optimizer) {
  if (with_optimizer && !reader.has_optimizer_state())
    throw InputError(reader.manifest().path, "holds no optimizer state", "consolidate without --optimizer");
  reader.verify_all();
  const model::ParamLayout full = full_layout(reader.model());
  std::vector<Kind> kinds = {Kind::Params};
  if (with_optimizer) kinds = {Kind::Params, Kind::ExpAvg, Kind::ExpAvgSq};
  std::vector<std::vector<float>> values;
  for (Kind k : kinds) {
    values.emplace_back(size_t(full.total));
    reader.read_flat(k, full, 0, full.total, values.back().data());
  }
  std::vector<model::io::TensorToWrite> tensors;
  for (size_t i = 0; i < kinds.size(); ++i)
    for (const model::ParamInfo& p : full.params) {
      const std::string name =
          kinds[i] == Kind::Params ? p.name : std::string(kind_name(kinds[i])) + "/" + p.name;
      std::vector<int64_t> shape =
          p.cols == 1 ? std::vector<int64_t>{p.rows} : std::vector<int64_t>{p.rows, p.cols};
      tensors.push_back({name, kernels::DType::F32, shape, values[i].data() + p.offset});
    }
  const Manifest& m = reader.manifest();
  model::io::write_safetensors(out_file, tensors,
                               {{"format", "pt"},
                                {"fmengine_format", "fmengine-consolidated"},
                                {"tag", m.tag},
                                {"global_step", std::to_string(m.state.global_step)},
                                {"model_config", m.model_config_json}});
}

namespace {

struct CopyFile {
  fs::path from;
  std::string name;  // in the export directory
};

// The tokenizer files to copy from `path`: a tokenizer file (exported as tokenizer.json, with the
// tokenizer_config.json etc. beside it) or a directory holding them.
std::vector<CopyFile> tokenizer_files(const fs::path& path) {
  static const char* names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                "tokenizer.model", "added_tokens.json"};
  std::error_code ec;
  const bool is_dir = fs::is_directory(path, ec);
  const fs::path dir = is_dir ? path : path.parent_path();
  std::vector<CopyFile> out;
  if (!is_dir) out.push_back({path, "tokenizer.json"});
  for (const char* n : names) {
    const fs::path p = dir / n;
    if (!fs::is_regular_file(p, ec)) continue;
    if (!is_dir && std::string(n) == "tokenizer.json") continue;  // the given file is the tokenizer
    out.push_back({p, n});
  }
  return out;
}

}  // namespace

std::vector<std::string> export_hf(const CheckpointReader& reader, const std::string& out_dir,
                                   const HfExport& how) {
  std::vector<std::string> notes;
  // Check the tokenizer before the (long) export.
  std::vector<CopyFile> tok;
  std::error_code ec;
  if (!how.tokenizer.empty()) {
    if (!fs::exists(how.tokenizer, ec)) throw InputError("--tokenizer", how.tokenizer + " does not exist");
    tok = tokenizer_files(how.tokenizer);
    if (tok.empty())
      throw InputError("--tokenizer", how.tokenizer + " holds no tokenizer files",
                       "give a tokenizer.json or a directory holding one");
  } else if (!reader.state().tokenizer.empty()) {
    if (fs::exists(reader.state().tokenizer, ec))
      tok = tokenizer_files(reader.state().tokenizer);
    else
      notes.push_back("the tokenizer the run used (" + reader.state().tokenizer +
                      ") is gone: no tokenizer files copied (pass --tokenizer PATH)");
  } else {
    notes.push_back("the checkpoint records no tokenizer: no tokenizer files copied (pass --tokenizer PATH)");
  }

  reader.verify_all();
  const std::vector<float> params = read_full_params(reader);
  model::io::export_hf_checkpoint(out_dir, reader.model(), params.data(), how.options);
  for (const CopyFile& f : tok) {
    const fs::path dst = fs::path(out_dir) / f.name;
    fs::copy_file(f.from, dst, fs::copy_options::overwrite_existing, ec);
    if (ec)
      throw RuntimeFault("cannot copy " + f.from.string() + " to " + dst.string() + ": " + ec.message());
    notes.push_back("copied " + f.from.string() + " as " + f.name);
  }
  return notes;
}

int64_t parse_size(const std::string& text, const std::string& where) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double value = 0;
  std::string unit = text.substr(i);
  for (auto& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  const struct {
    const char* name;
    double factor;
  } units[] = {
      {"", 1},      {"B", 1},      {"KB", 1e3},      {"MB", 1e6},           {"GB", 1e9},
      {"TB", 1e12}, {"KIB", 1024}, {"MIB", 1048576}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  const char* hint = "a byte count with an optional unit: 5GB, 500MB, 2GiB, 100000";
  if (i == 0 || !parse_double(text.substr(0, i), value))
    throw InputError(where, "\"" + text + "\" is not a size", hint);
  for (const auto& u : units)
    if (unit == u.name) {
      const double bytes = std::floor(value * u.factor);
      if (bytes < 1 || bytes > 9e18) throw InputError(where, "\"" + text + "\" is out of range", hint);
      return int64_t(bytes);
    }
  throw InputError(where, "\"" + text + "\" has an unknown unit \"" + unit + "\"", hint);
}

}  // namespace fm::checkpoint
