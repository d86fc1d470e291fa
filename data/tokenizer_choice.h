// Picking the tokenizer of a preprocessing run from a user's --tokenizer value.
//
// "" (or "byte") is the embedded byte-level tokenizer; anything else is a Hugging Face
// tokenizer.json file or a directory holding one. The fingerprint identifies the tokenizer by the
// content of tokenizer.json and of the tokenizer_config.json beside it (a fixed value for
// byte-level); shards record it and the JSONL cache keys on it. It is computed without building
// the tokenizer, so every rank can check a cache cheaply.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/tokenizer/tokenizer.h"

namespace fm::data {

struct ChosenTokenizer {
  std::unique_ptr<Tokenizer> tokenizer;
  uint64_t fingerprint = 0;
  std::string file;  // the tokenizer.json read, empty for byte-level
};

// The tokenizer.json a spec names ("" for byte-level); a missing file is an InputError at `where`.
std::string tokenizer_file(const std::string& spec, const std::string& where = "--tokenizer");
uint64_t tokenizer_fingerprint(const std::string& spec, const std::string& where = "--tokenizer");
ChosenTokenizer choose_tokenizer(const std::string& spec, const std::string& where = "--tokenizer");

}  // namespace fm::data
