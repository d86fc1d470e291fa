#include "data/jsonl_cache.h"

#include <sys/stat.h>

#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "data/hash.h"
#include "data/prep.h"
#include "data/shard.h"
#include "data/tokenizer_choice.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"

namespace fm::data {

namespace {

namespace fs = std::filesystem;

struct SourceStat {
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

SourceStat stat_source(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw InputError(path, "no such JSONL file", "check the path given in --data_path");
  return {static_cast<int64_t>(st.st_size),
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + static_cast<int64_t>(st.st_mtim.tv_nsec)};
}

struct Entry {
  std::string prefix, manifest;
  uint64_t tokenizer_fp = 0;
};

Entry entry_for(const JsonlSpec& spec) {
  if (spec.cache_dir.empty())
    throw InputError("--data_path", "a raw JSONL dataset needs a cache directory to hold its tokens");
  std::error_code ec;
  fs::path abs = fs::absolute(spec.path, ec);
  Entry e;
  e.tokenizer_fp = tokenizer_fingerprint(spec.tokenizer);
  uint64_t key = hash_combine(hash_combine(hash_bytes(abs.string()), e.tokenizer_fp), hash_bytes(spec.text_key));
  std::string stem = fs::path(spec.path).stem().string();
  e.prefix = (fs::path(spec.cache_dir) / (stem + "-" + hex64(key))).string();
  e.manifest = e.prefix + ".json";
  return e;
}

struct Manifest {
  int64_t size = -1, mtime_ns = -1;
  uint64_t content_hash = 0, tokenizer_fp = 0;
};

bool read_manifest(const std::string& path, Manifest& m) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  rapidjson::Document d;
  d.Parse(ss.str().c_str());
  if (d.HasParseError() || !d.IsObject()) return false;
  auto num = [&](const char* k, int64_t& out) {
    auto it = d.FindMember(k);
    if (it == d.MemberEnd() || !it->value.IsInt64()) return false;
    out = it->value.GetInt64();
    return true;
  };
  auto hex = [&](const char* k, uint64_t& out) {
    auto it = d.FindMember(k);
    if (it == d.MemberEnd() || !it->value.IsString()) return false;
    char* end = nullptr;
    out = std::strtoull(it->value.GetString(), &end, 16);
    return end && *end == '\0' && it->value.GetStringLength() == 16;
  };
  return num("size", m.size) && num("mtime_ns", m.mtime_ns) && hex("content_hash", m.content_hash) &&
         hex("tokenizer_fingerprint", m.tokenizer_fp);
}

void write_manifest(const std::string& path, const std::string& source, const Manifest& m) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    // The source path is informational; quote characters in it would only spoil that field.
    std::string shown = source;
    for (char& c : shown)
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 32) c = '_';
    out << fmt::format(
        "{{\n  \"source\": \"{}\",\n  \"size\": {},\n  \"mtime_ns\": {},\n  \"content_hash\": \"{}\",\n"
        "  \"tokenizer_fingerprint\": \"{}\"\n}}\n",
        shown, m.size, m.mtime_ns, hex64(m.content_hash), hex64(m.tokenizer_fp));
    if (!out.flush()) throw RuntimeFault(path + ": cannot write the cache manifest");
  }
  fs::rename(tmp, path);
}

// Whether the entry is valid for the input as it is now; refreshes the manifest's mtime when the
// file was only touched.
bool entry_valid(const JsonlSpec& spec, const Entry& e) {
  Manifest m;
  if (!read_manifest(e.manifest, m)) return false;
  if (!fs::exists(e.prefix + ".bin") || !fs::exists(e.prefix + ".idx")) return false;
  SourceStat now = stat_source(spec.path);
  if (m.size != now.size || m.tokenizer_fp != e.tokenizer_fp) return false;
  if (m.mtime_ns == now.mtime_ns) return true;
  if (hash_file(spec.path) != m.content_hash) return false;
  m.mtime_ns = now.mtime_ns;
  write_manifest(e.manifest, spec.path, m);
  return true;
}

}  // namespace

std::string find_jsonl_cache(const JsonlSpec& spec) {
  stat_source(spec.path);
  Entry e = entry_for(spec);
  return entry_valid(spec, e) ? e.prefix : std::string();
}

std::string prepare_jsonl_cache(const JsonlSpec& spec) {
  SourceStat before = stat_source(spec.path);
  Entry e = entry_for(spec);
  if (entry_valid(spec, e)) {
    log::info("data: reusing tokenized {} from {}", spec.path, e.prefix);
    return e.prefix;
  }
  std::error_code ec;
  fs::create_directories(spec.cache_dir, ec);
  if (ec) throw InputError(spec.cache_dir, "cannot create the data cache directory: " + ec.message());
  log::info("data: tokenizing {} into {}", spec.path, e.prefix);
  ChosenTokenizer tok = choose_tokenizer(spec.tokenizer);
  // Hashed before tokenizing: if the file changes meanwhile, the next run sees a mismatch.
  const uint64_t content_hash = hash_file(spec.path);
  PrepOptions opt;
  opt.inputs = {spec.path};
  opt.output_prefix = e.prefix;
  opt.text_key = spec.text_key;
  opt.threads = spec.threads;
  opt.on_bad_line = OnBadLine::kError;
  PrepSummary sum = prepare_shard(opt, *tok.tokenizer, tok.fingerprint);
  Manifest m;
  m.size = before.size;
  m.mtime_ns = before.mtime_ns;
  m.content_hash = content_hash;
  m.tokenizer_fp = e.tokenizer_fp;
  write_manifest(e.manifest, spec.path, m);
  log::info("data: {} documents, {} tokens in {:.1f} s", sum.documents, sum.tokens, sum.seconds);
  return e.prefix;
}

}  // namespace fm::data
