// The synthetic corpus (determinism, shape, learnability by entropy) and the seeded helpers.
#include <doctest/doctest.h>

#include <cmath>
#include <set>

#include "data/hash.h"
#include "data/permutation.h"
#include "data/synthetic.h"
#include "data/tokenizer/tokenizer.h"

using namespace fm::data;

TEST_CASE("synthetic corpus: same seed gives the same tokens, another seed others") {
  auto a = synthetic_corpus(7, 50000);
  auto b = synthetic_corpus(7, 50000);
  auto c = synthetic_corpus(8, 50000);
  CHECK(a->tokens() == b->tokens());
  CHECK(a->tokens() != c->tokens());
  CHECK(a->num_tokens() >= 50000);
  CHECK(synthetic_document(7, 3) == synthetic_document(7, 3));
  CHECK(synthetic_document(7, 3) != synthetic_document(7, 4));
}

TEST_CASE("synthetic corpus: byte-tokenized documents framed by <bos> ... <eos>") {
  auto corpus = synthetic_corpus(0, 20000);
  for (int64_t d = 0; d < corpus->num_documents(); ++d) {
    const int64_t s = corpus->document_start(d), e = corpus->document_start(d + 1);
    REQUIRE(e - s > 2);
    CHECK(corpus->tokens()[s] == ByteTokenizer::kBos);
    CHECK(corpus->tokens()[e - 1] == ByteTokenizer::kEos);
    std::string text;
    for (int64_t i = s + 1; i < e - 1; ++i) {
      int32_t t = corpus->tokens()[i];
      REQUIRE(t >= 0);
      REQUIRE(t < 256);
      text += static_cast<char>(t);
    }
    CHECK(text == synthetic_document(0, d));
    for (char ch : text) CHECK(((ch >= 'a' && ch <= 'z') || ch == ' ' || ch == '.' || ch == '\n'));
  }
}

TEST_CASE("measure_entropy on sequences with known entropies") {
  std::vector<int32_t> cycle;
  for (int i = 0; i < 4000; ++i) cycle.push_back(i % 4);
  CorpusEntropy e = measure_entropy(cycle.data(), static_cast<int64_t>(cycle.size()));
  CHECK(e.unigram == doctest::Approx(std::log(4.0)).epsilon(1e-9));
  CHECK(e.bigram == doctest::Approx(0.0).epsilon(1e-12));
  CHECK(e.distinct_tokens == 4);

  // Independent fair coin flips: both entropies near ln 2.
  Rng rng(3);
  std::vector<int32_t> coin;
  for (int i = 0; i < 200000; ++i) coin.push_back(static_cast<int32_t>(rng.below(2)));
  e = measure_entropy(coin.data(), static_cast<int64_t>(coin.size()));
  CHECK(e.unigram == doctest::Approx(std::log(2.0)).epsilon(1e-3));
  CHECK(e.bigram == doctest::Approx(std::log(2.0)).epsilon(1e-3));
}

TEST_CASE("synthetic corpus is learnable: bigram entropy far below half the initial loss") {
  // A 512-vocab model starts near ln(512) = 6.24 nats per token; the quickstart must at least
  // halve that. A bigram model reaches the bigram entropy, so it must sit well below 3.12.
  auto corpus = synthetic_corpus(0);
  CorpusEntropy e = measure_entropy(corpus->tokens().data(), corpus->num_tokens());
  const double half_initial = 0.5 * std::log(512.0);
  MESSAGE("unigram " << e.unigram << " nats, bigram " << e.bigram << " nats, " << e.distinct_tokens << " symbols");
  CHECK(e.unigram < half_initial);
  CHECK(e.bigram < 0.7 * half_initial);
  CHECK(e.distinct_tokens < 40);
}

TEST_CASE("IndexPermutation is a bijection and depends on the seed") {
  for (int64_t n : {1, 2, 3, 5, 17, 64, 1000, 4097}) {
    IndexPermutation p(n, 11);
    std::set<int64_t> seen;
    for (int64_t i = 0; i < n; ++i) {
      int64_t v = p(i);
      REQUIRE(v >= 0);
      REQUIRE(v < n);
      seen.insert(v);
    }
    CHECK(static_cast<int64_t>(seen.size()) == n);
  }
  IndexPermutation a(1000, 1), b(1000, 2);
  int same = 0, fixed = 0;
  for (int64_t i = 0; i < 1000; ++i) same += a(i) == b(i), fixed += a(i) == i;
  CHECK(same < 20);
  CHECK(fixed < 20);
}

TEST_CASE("StreamHasher does not depend on how the bytes are cut") {
  std::string text(1000, '\0');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>(i * 7);
  StreamHasher h;
  for (size_t i = 0; i < text.size(); i += 13) h.update(std::string_view(text).substr(i, 13));
  CHECK(h.digest() == hash_bytes(text));
  CHECK(hash_bytes(text) != hash_bytes(text.substr(1)));
  CHECK(hash_bytes("a", 1) != hash_bytes("a", 2));
}

TEST_CASE("Rng::below stays in range and covers it") {
  Rng rng(5);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 70000; ++i) {
    uint64_t v = rng.below(7);
    REQUIRE(v < 7);
    counts[v]++;
  }
  for (int c : counts) CHECK(std::abs(c - 10000) < 500);
}
