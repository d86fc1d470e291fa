#include "data/datasets.h"

#include <cstring>
#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "data/blend.h"
#include "data/hash.h"
#include "data/jsonl_cache.h"
#include "data/packed_source.h"
#include "data/shard.h"
#include "data/split.h"
#include "data/synthetic.h"
#include "data/token_file.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::data {

namespace {

constexpr const char* kWhere = "--data_path";

struct Entry {
  double weight = 1;
  std::string path;
};

std::vector<Entry> parse_entries(const std::vector<std::string>& words) {
  const std::string hint = "give one path, or weighted pairs like '0.3 pathA 0.7 pathB'";
  if (words.empty()) return {{1.0, "synthetic"}};
  if (words.size() == 1) return {{1.0, words[0]}};
  if (words.size() % 2 != 0)
    throw InputError(kWhere, fmt::format("{} words: expected one path or WEIGHT PATH pairs", words.size()), hint);
  std::vector<Entry> entries;
  for (size_t i = 0; i < words.size(); i += 2) {
    double w;
    if (!parse_double(words[i], w) || w <= 0)
      throw InputError(kWhere, fmt::format("'{}' (word {}) is not a positive weight", words[i], i + 1), hint);
    entries.push_back({w, words[i + 1]});
  }
  return entries;
}

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_jsonl(const std::string& path) { return ends_with(path, ".jsonl") || ends_with(path, ".ndjson"); }

bool is_synthetic(const std::string& path, uint64_t& seed) {
  if (path == "synthetic") {
    seed = 0;
    return true;
  }
  if (path.rfind("synthetic:", 0) != 0) return false;
  long long s;
  if (!parse_int64(path.substr(10), s) || s < 0)
    throw InputError(kWhere, fmt::format("'{}': the synthetic corpus seed must be a non-negative integer", path),
                     "e.g. synthetic:7");
  seed = static_cast<uint64_t>(s);
  return true;
}

JsonlSpec jsonl_spec(const DataOptions& o, const std::string& path) {
  return {path, o.tokenizer, o.cache_dir, o.text_key, o.prep_threads};
}

struct Opened {
  std::array<std::shared_ptr<const SampleSource>, 3> parts;
  bool token_file = false;
  int64_t vocab = 0;
};

Opened open_documents(std::shared_ptr<const DocumentSet> docs, const DataOptions& o, const SplitWeights& split,
                      uint64_t shuffle_seed, const std::string& path) {
  Opened out;
  auto ranges = split_ranges(docs->num_documents(), split);
  for (int s = 0; s < 3; ++s) {
    auto src = std::make_shared<PackedSource>(docs, ranges[s].begin, ranges[s].size(), o.seq_len, shuffle_seed,
                                              kSplitNames[s]);
    if (src->size() > 0) out.parts[s] = std::move(src);
    else if (s == 0)
      throw InputError(path,
                       fmt::format("the train split has {} documents and {} tokens, fewer than one sample of "
                                   "seq_len+1 = {} tokens",
                                   src->num_documents(), src->num_tokens(), o.seq_len + 1),
                       "use more data, a shorter sequence, or a larger train weight in --split");
  }
  return out;
}

Opened open_entry(const DataOptions& o, const SplitWeights& split, const std::string& path, size_t position) {
  const uint64_t shuffle_seed = hash_combine(o.seed, position);
  uint64_t corpus_seed;
  if (is_synthetic(path, corpus_seed)) {
    Opened out = open_documents(synthetic_corpus(corpus_seed), o, split, shuffle_seed, path);
    out.vocab = 258;
    return out;
  }
  if (is_jsonl(path)) {
    std::string prefix = find_jsonl_cache(jsonl_spec(o, path));
    if (prefix.empty())
      throw InputError(path, "this JSONL file has not been tokenized into the data cache yet",
                       "prepare the data first (the engine does so on one rank before opening it)");
    auto shard = Shard::open(prefix);
    Opened out = open_documents(shard, o, split, shuffle_seed, path);
    out.vocab = shard->info().vocab_size;
    return out;
  }
  if (is_token_file(path)) {
    auto file = TokenFile::open(path);
    const int64_t windows = count_token_windows(*file, o.seq_len);
    auto ranges = split_ranges(windows, split);
    Opened out;
    out.token_file = true;
    for (int s = 0; s < 3; ++s)
      if (ranges[s].size() > 0)
        out.parts[s] = std::make_shared<TokenFileSource>(file, o.seq_len, ranges[s].begin, ranges[s].size());
    if (!out.parts[0])
      throw InputError(path, fmt::format("the train split of {} windows is empty", windows),
                       "give train a larger weight in --split");
    return out;
  }
  if (is_shard(path)) {
    auto shard = Shard::open(path);
    Opened out = open_documents(shard, o, split, shuffle_seed, path);
    out.vocab = shard->info().vocab_size;
    return out;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) && !std::filesystem::exists(shard_prefix(path) + ".bin", ec))
    throw InputError(path, "no such file or shard",
                     "give a token file, a shard prefix written by fmprep, a .jsonl file, or 'synthetic'");
  throw InputError(path, "not a recognised dataset (not a token file, not a shard, not .jsonl)",
                   "tokenize raw text with fmprep, or name a .jsonl file");
}

}  // namespace

std::vector<std::string> split_data_path(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool data_needs_preparation(const DataOptions& o) {
  for (const Entry& e : parse_entries(o.data_path))
    if (is_jsonl(e.path) && find_jsonl_cache(jsonl_spec(o, e.path)).empty()) return true;
  return false;
}

void prepare_data(const DataOptions& o) {
  for (const Entry& e : parse_entries(o.data_path))
    if (is_jsonl(e.path)) prepare_jsonl_cache(jsonl_spec(o, e.path));
}

DataSources open_data(const DataOptions& o) {
  FM_CHECK(o.seq_len > 0, "open_data needs seq_len");
  const std::vector<Entry> entries = parse_entries(o.data_path);
  const SplitWeights split = parse_split(o.split);
  std::vector<Opened> opened;
  for (size_t i = 0; i < entries.size(); ++i) opened.push_back(open_entry(o, split, entries[i].path, i));

  DataSources out;
  out.shuffle = false;
  for (const Opened& op : opened) {
    out.shuffle |= !op.token_file;
    out.tokenizer_vocab_size = std::max(out.tokenizer_vocab_size, op.vocab);
  }
  std::array<std::shared_ptr<const SampleSource>, 3> result;
  for (int s = 0; s < 3; ++s) {
    std::vector<std::shared_ptr<const SampleSource>> parts;
    std::vector<double> weights;
    for (size_t i = 0; i < opened.size(); ++i)
      if (opened[i].parts[s]) parts.push_back(opened[i].parts[s]), weights.push_back(entries[i].weight);
    if (parts.size() == 1) result[s] = parts[0];
    else if (parts.size() > 1) result[s] = std::make_shared<BlendedSource>(std::move(parts), std::move(weights));
  }
  out.train = result[0];
  out.valid = result[1];
  out.test = result[2];
  return out;
}

std::string DataSources::describe() const {
  std::string s = "train: " + train->describe();
  s += "\nvalidation: " + (valid ? valid->describe() : std::string("none"));
  s += "\ntest: " + (test ? test->describe() : std::string("none"));
  return s;
}

}  // namespace fm::data
