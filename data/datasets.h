// Opening the datasets named by --data_path, split by --split, for the loader.
//
// --data_path is either one path or pairs "WEIGHT PATH ..." blended by weight (data/blend.h).
// A path is, by content or name:
//   synthetic, synthetic:SEED   the embedded generated corpus (data/synthetic.h)
//   an FMTOKENS file            a token file, read in order (data/token_file.h)
//   PREFIX, PREFIX.bin/.idx     a shard written by fmprep (data/shard.h)
//   *.jsonl, *.ndjson           raw JSONL, tokenized once into cache_dir (data/jsonl_cache.h)
// Every dataset is split into train/validation/test by --split (data/split.h): shards and
// corpora by documents, token files by windows. Documents of each split are shuffled once by
// seed before packing; token files keep their order. The blends of the three splits use the
// same weights over the datasets whose split is not empty.
//
// prepare_data() does the one-off work (tokenizing raw JSONL) and is meant for one rank while the
// others wait; open_data() never tokenizes and is cheap (memory maps and small index arrays).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/sample_source.h"

namespace fm::data {

struct DataOptions {
  std::vector<std::string> data_path;  // the words of --data_path; empty means "synthetic"
  std::string split = "969,30,1";
  int seq_len = 0;
  uint64_t seed = 0;
  std::string tokenizer;  // for raw JSONL: tokenizer.json or its directory; empty = byte-level
  std::string cache_dir;  // for raw JSONL
  std::string text_key = "text";
  int prep_threads = 0;   // for raw JSONL; 0 = all cores
};

struct DataSources {
  std::shared_ptr<const SampleSource> train;
  std::shared_ptr<const SampleSource> valid;  // null when the validation split is empty
  std::shared_ptr<const SampleSource> test;   // null when the test split is empty
  // Whether the loader should shuffle: false when every dataset is a token file (read in order).
  bool shuffle = true;
  // The largest vocab_size of the tokenizers that produced the data (0 when unknown, e.g. token
  // files): a model with a smaller vocabulary cannot train on it.
  int64_t tokenizer_vocab_size = 0;
  std::string describe() const;
};

// Splits a --data_path string into its words.
std::vector<std::string> split_data_path(const std::string& text);

// True when some dataset is raw JSONL without a valid cache entry.
bool data_needs_preparation(const DataOptions& options);
void prepare_data(const DataOptions& options);
DataSources open_data(const DataOptions& options);

}  // namespace fm::data
