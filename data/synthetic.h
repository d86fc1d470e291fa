// The embedded synthetic corpus: English-like text from a small probabilistic grammar, so a tiny
// model trained without any data file learns something visible within a few hundred steps.
//
// About fifty lowercase words in a few sentence templates ("the old dog sees a bird near the
// river."), grouped into paragraphs and documents. Each document is byte-tokenized with the
// ByteTokenizer template (<bos> first) and ends with <eos>, so ids stay below 258. The same seed
// always gives the same bytes (the generator uses only fm::data::Rng and integer weights).
// docs/data.md lists the measured entropies: the per-byte bigram entropy is far below half of
// ln(vocab) for the tiny model, so the loss can halve quickly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "data/documents.h"

namespace fm::data {

inline constexpr int64_t kSyntheticDefaultTokens = int64_t{1} << 21;

// One document of generated text (no special tokens).
std::string synthetic_document(uint64_t seed, int64_t doc_index);

// Generated documents totalling at least `min_tokens` tokens (with <bos>/<eos>).
std::shared_ptr<const InMemoryDocuments> synthetic_corpus(uint64_t seed, int64_t min_tokens = kSyntheticDefaultTokens);

// Empirical entropies of a token sequence, in nats per token: of the unigram distribution, and of
// a token given the previous one (the loss an ideal bigram model reaches on this very data).
struct CorpusEntropy {
  double unigram = 0;
  double bigram = 0;
  int distinct_tokens = 0;
};
CorpusEntropy measure_entropy(const int32_t* tokens, int64_t n);

}  // namespace fm::data
