#include "data/synthetic.h"

#include <array>
#include <cmath>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "data/hash.h"
#include "data/tokenizer/tokenizer.h"
#include "runtime/base/error.h"

namespace fm::data {

namespace {

// A word list with integer weights: frequent words make the text predictable, as in English.
struct Weighted {
  const char* word;
  int weight;
};

template <size_t N>
const char* pick(Rng& rng, const std::array<Weighted, N>& words) {
  int total = 0;
  for (const auto& w : words) total += w.weight;
  int r = static_cast<int>(rng.below(static_cast<uint64_t>(total)));
  for (const auto& w : words) {
    if (r < w.weight) return w.word;
    r -= w.weight;
  }
  return words.back().word;
}

constexpr std::array<Weighted, 4> kDeterminers{{{"the", 8}, {"a", 4}, {"every", 1}, {"one", 1}}};
constexpr std::array<Weighted, 8> kAdjectives{{{"old", 3}, {"red", 2}, {"small", 3}, {"big", 2},
                                               {"quiet", 1}, {"happy", 2}, {"dark", 1}, {"green", 1}}};
constexpr std::array<Weighted, 14> kNouns{{{"cat", 5}, {"dog", 5}, {"bird", 4}, {"fish", 2}, {"man", 3},
                                           {"woman", 3}, {"child", 3}, {"king", 2}, {"boat", 2}, {"tree", 3},
                                           {"river", 3}, {"house", 3}, {"hill", 2}, {"song", 1}}};
constexpr std::array<Weighted, 7> kTransitive{{{"sees", 5}, {"likes", 4}, {"finds", 3}, {"helps", 2},
                                               {"hears", 2}, {"takes", 2}, {"wants", 2}}};
constexpr std::array<Weighted, 6> kIntransitive{
    {{"sleeps", 4}, {"runs", 4}, {"sings", 2}, {"waits", 2}, {"swims", 1}, {"falls", 1}}};
constexpr std::array<Weighted, 5> kAdverbs{{{"slowly", 2}, {"again", 2}, {"today", 3}, {"there", 2}, {"now", 2}}};
constexpr std::array<Weighted, 6> kPrepositions{
    {{"near", 3}, {"under", 2}, {"with", 3}, {"by", 2}, {"over", 1}, {"into", 1}}};
constexpr std::array<Weighted, 3> kConjunctions{{{"and", 4}, {"but", 2}, {"so", 1}}};

void noun_phrase(Rng& rng, std::string& out) {
  out += pick(rng, kDeterminers);
  out += ' ';
  if (rng.below(3) == 0) {
    out += pick(rng, kAdjectives);
    out += ' ';
  }
  out += pick(rng, kNouns);
}

void verb_phrase(Rng& rng, std::string& out) {
  switch (rng.below(6)) {
    case 0:
    case 1:
      out += pick(rng, kTransitive);
      out += ' ';
      noun_phrase(rng, out);
      break;
    case 2:
      out += pick(rng, kTransitive);
      out += ' ';
      noun_phrase(rng, out);
      out += ' ';
      out += pick(rng, kPrepositions);
      out += ' ';
      noun_phrase(rng, out);
      break;
    case 3:
      out += pick(rng, kIntransitive);
      out += ' ';
      out += pick(rng, kAdverbs);
      break;
    default:
      out += pick(rng, kIntransitive);
      break;
  }
}

void sentence(Rng& rng, std::string& out) {
  switch (rng.below(5)) {
    case 0:  // "near the river the dog sleeps."
      out += pick(rng, kPrepositions);
      out += ' ';
      noun_phrase(rng, out);
      out += ' ';
      noun_phrase(rng, out);
      out += ' ';
      verb_phrase(rng, out);
      break;
    case 1:  // two clauses joined
      noun_phrase(rng, out);
      out += ' ';
      verb_phrase(rng, out);
      out += ' ';
      out += pick(rng, kConjunctions);
      out += ' ';
      noun_phrase(rng, out);
      out += ' ';
      verb_phrase(rng, out);
      break;
    default:
      noun_phrase(rng, out);
      out += ' ';
      verb_phrase(rng, out);
      break;
  }
  out += '.';
}

}  // namespace

std::string synthetic_document(uint64_t seed, int64_t doc_index) {
  // Each document has its own generator, so document i is the same whatever came before it.
  Rng rng(hash_combine(hash_combine(seed, 0x73796e7468657469ULL), static_cast<uint64_t>(doc_index)));
  std::string out;
  const int paragraphs = 1 + static_cast<int>(rng.below(3));
  for (int p = 0; p < paragraphs; ++p) {
    const int sentences = 2 + static_cast<int>(rng.below(4));
    for (int s = 0; s < sentences; ++s) {
      if (s) out += ' ';
      sentence(rng, out);
    }
    out += '\n';
  }
  return out;
}

std::shared_ptr<const InMemoryDocuments> synthetic_corpus(uint64_t seed, int64_t min_tokens) {
  const ByteTokenizer tokenizer;
  std::vector<int32_t> tokens;
  std::vector<int64_t> starts{0};
  tokens.reserve(static_cast<size_t>(min_tokens) + 4096);
  for (int64_t d = 0; static_cast<int64_t>(tokens.size()) < min_tokens; ++d) {
    std::vector<int32_t> ids = tokenizer.encode(synthetic_document(seed, d), /*add_special_tokens=*/true);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
    tokens.push_back(tokenizer.eos_id());
    starts.push_back(static_cast<int64_t>(tokens.size()));
  }
  return std::make_shared<InMemoryDocuments>(fmt::format("synthetic corpus (seed {})", seed), std::move(tokens),
                                             std::move(starts));
}

CorpusEntropy measure_entropy(const int32_t* tokens, int64_t n) {
  CorpusEntropy e;
  if (n <= 1) return e;
  std::unordered_map<int32_t, int64_t> unigram;
  std::unordered_map<int64_t, int64_t> pair;
  std::unordered_map<int32_t, int64_t> context;
  for (int64_t i = 0; i < n; ++i) {
    ++unigram[tokens[i]];
    if (i > 0) {
      ++pair[(static_cast<int64_t>(tokens[i - 1]) << 32) | static_cast<uint32_t>(tokens[i])];
      ++context[tokens[i - 1]];
    }
  }
  for (const auto& [tok, c] : unigram) {
    double p = static_cast<double>(c) / static_cast<double>(n);
    e.unigram -= p * std::log(p);
  }
  const double pairs = static_cast<double>(n - 1);
  for (const auto& [key, c] : pair) {
    const auto prev = static_cast<int32_t>(key >> 32);
    double joint = static_cast<double>(c) / pairs;
    double conditional = static_cast<double>(c) / static_cast<double>(context[prev]);
    e.bigram -= joint * std::log(conditional);
  }
  e.distinct_tokens = static_cast<int>(unigram.size());
  return e;
}

}  // namespace fm::data
