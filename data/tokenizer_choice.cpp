#include "data/tokenizer_choice.h"

#include <filesystem>

#include "data/hash.h"
#include "data/tokenizer/hf_tokenizer.h"
#include "runtime/base/error.h"

namespace fm::data {

std::string tokenizer_file(const std::string& spec, const std::string& where) {
  if (spec.empty() || spec == "byte" || spec == "byte-level") return {};
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path path(spec);
  if (fs::is_directory(path, ec)) path /= "tokenizer.json";
  if (!fs::is_regular_file(path, ec))
    throw InputError(where, "no tokenizer at '" + path.string() + "'",
                     "give a tokenizer.json file, a directory holding one, or leave it out for byte-level");
  return path.string();
}

uint64_t tokenizer_fingerprint(const std::string& spec, const std::string& where) {
  std::string file = tokenizer_file(spec, where);
  if (file.empty()) return hash_bytes("byte-level");
  // tokenizer_config.json beside the file names bos/eos, so it is part of the tokenizer too.
  uint64_t fp = hash_file(file);
  std::error_code ec;
  auto config = std::filesystem::path(file).parent_path() / "tokenizer_config.json";
  if (std::filesystem::is_regular_file(config, ec)) fp = hash_combine(fp, hash_file(config.string()));
  return fp;
}

ChosenTokenizer choose_tokenizer(const std::string& spec, const std::string& where) {
  ChosenTokenizer out;
  out.file = tokenizer_file(spec, where);
  out.fingerprint = tokenizer_fingerprint(spec, where);
  if (out.file.empty()) {
    out.tokenizer = std::make_unique<ByteTokenizer>();
    return out;
  }
  out.tokenizer = load_hf_tokenizer(out.file);
  return out;
}

}  // namespace fm::data
