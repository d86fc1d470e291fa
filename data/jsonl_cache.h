// Raw JSONL as a dataset: tokenized once into a cache directory and reused.
//
// An entry for input X lives in CACHE_DIR as STEM-KEY.bin/.idx (a shard, data/shard.h) plus
// STEM-KEY.json, a manifest recording the input's size, modification time and content hash and
// the tokenizer's fingerprint. KEY hashes the input's absolute path, the tokenizer fingerprint and
// the text key. An entry is reused when size and tokenizer match and either the mtime matches or
// (after a touch) the content hash does; otherwise it is rebuilt. Bad lines stop the build with
// an InputError (file:line), as fmprep's --on_bad_line error.
//
// Building and finding are separate so the engine can build on one rank while the others wait,
// then open the entry everywhere.
#pragma once

#include <string>

namespace fm::data {

struct JsonlSpec {
  std::string path;        // the .jsonl file
  std::string tokenizer;   // tokenizer spec (data/tokenizer_choice.h)
  std::string cache_dir;
  std::string text_key = "text";
  int threads = 0;
};

// Shard prefix of the entry if a valid one exists, else "" (no tokenization).
std::string find_jsonl_cache(const JsonlSpec& spec);
// Returns the entry's shard prefix, building the entry first unless a valid one exists.
std::string prepare_jsonl_cache(const JsonlSpec& spec);

}  // namespace fm::data
