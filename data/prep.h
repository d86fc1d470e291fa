// Preprocessing: raw text in, one token shard (data/shard.h) out. The engine of fmprep, also used
// to tokenize a raw JSONL --data_path into the cache (data/jsonl_cache.h).
//
// Inputs, by file name:
//   *.jsonl, *.ndjson   one JSON object per line; the document is the string under text_key.
//                       Blank lines are ignored.
//   anything else       plain UTF-8 text; text_split says what a document is: the whole file
//                       (default), each block of lines separated by blank lines, or each line.
// Each document is encoded with the tokenizer's template when add_special_tokens is set (e.g. a
// leading <s>) and followed by the tokenizer's EOS. Empty documents are counted and left out.
//
// Bad input lines (malformed JSON or not an object, missing key, text not a string, invalid UTF-8)
// are each reported as file:line. on_bad_line=error stops at the first one in input order with an
// InputError; skip leaves them out and counts them by reason. An empty input file, or inputs
// yielding no document at all, are InputErrors whatever the mode.
//
// Work is split into chunks tokenized in parallel by oneTBB and written in input order, so the
// output bytes do not depend on the thread count.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/shard.h"
#include "data/tokenizer/tokenizer.h"

namespace fm::data {

enum class OnBadLine { kSkip, kError };
enum class TextSplit { kFile, kParagraph, kLine };

enum class BadLine { kMalformedJson, kMissingKey, kNotString, kInvalidUtf8 };
inline constexpr int kNumBadLineKinds = 4;
const char* bad_line_name(BadLine kind);

struct PrepOptions {
  std::vector<std::string> inputs;
  std::string output_prefix;
  std::string text_key = "text";
  int threads = 0;  // 0: all hardware threads
  OnBadLine on_bad_line = OnBadLine::kError;
  TextSplit text_split = TextSplit::kFile;
  bool add_special_tokens = true;
  bool progress = true;            // a bar on a terminal, else a line every 30 s
  int max_reported_bad_lines = 100;  // skipped lines printed one by one; the rest only counted
  size_t chunk_bytes = size_t{1} << 20;
};

struct PrepSummary {
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t input_bytes = 0;
  int64_t empty_documents = 0;
  std::array<int64_t, kNumBadLineKinds> skipped{};
  double seconds = 0;
  ShardInfo shard;
  std::string output_prefix;
  std::string text_key;
  int64_t total_skipped() const;
  // Multi-line human summary: documents, tokens, tokens per document, MB/s, skipped by reason.
  std::string format() const;
};

// Validates the inputs (existence, non-empty) before any work, then tokenizes and writes
// PREFIX.bin and PREFIX.idx.
PrepSummary prepare_shard(const PrepOptions& options, const Tokenizer& tokenizer, uint64_t tokenizer_fingerprint);

}  // namespace fm::data
