// Shards (write, read, every validation message), packing into windows, splits, blends, and
// opening --data_path specifications.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "data/blend.h"
#include "data/datasets.h"
#include "data/packed_source.h"
#include "data/shard.h"
#include "data/split.h"
#include "data/token_file.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::expect_input_error;
using fm::data::testing::read_file;
using fm::data::testing::TempDir;
using fm::data::testing::write_file;

namespace {

// Document d has length 3 + d % 7 and tokens (d * 10 + i) % vocab, last one eos.
std::vector<std::vector<int32_t>> make_docs(int n, int32_t vocab = 1000, int32_t eos = 999) {
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < n; ++d) {
    std::vector<int32_t> doc;
    for (int i = 0; i < 2 + d % 7; ++i) doc.push_back((d * 10 + i) % (vocab - 1));
    doc.push_back(eos);
    docs.push_back(doc);
  }
  return docs;
}

void write_shard(const std::string& prefix, const std::vector<std::vector<int32_t>>& docs, int64_t vocab = 1000) {
  ShardWriter w(prefix, vocab, -1, 999, 0x1234);
  for (const auto& d : docs) w.add_document(d.data(), d.size());
  w.finish();
}

bool contains(const fm::InputError& e, const std::string& s) {
  bool ok = std::string(e.what()).find(s) != std::string::npos;
  if (!ok) MESSAGE("message was: " << e.what());
  return ok;
}

void patch(const std::string& path, size_t offset, const void* bytes, size_t n) {
  std::string s = read_file(path);
  std::memcpy(s.data() + offset, bytes, n);
  write_file(path, s);
}

}  // namespace

TEST_CASE("shard round trip with uint16 and uint32 tokens") {
  TempDir dir;
  auto docs = make_docs(20);
  for (int64_t vocab : {1000, 70000}) {
    const std::string prefix = dir / ("s" + std::to_string(vocab));
    write_shard(prefix, docs, vocab);
    CHECK(is_shard(prefix));
    CHECK(is_shard(prefix + ".bin"));
    auto s = Shard::open(prefix + ".idx");
    CHECK(s->info().token_bytes == (vocab <= 65536 ? 2 : 4));
    CHECK(s->info().vocab_size == vocab);
    CHECK(s->info().eos_id == 999);
    CHECK(s->info().tokenizer_fingerprint == 0x1234);
    REQUIRE(s->num_documents() == 20);
    for (int d = 0; d < 20; ++d) {
      std::vector<int32_t> got(s->document_length(d));
      s->copy_tokens(s->document_start(d), static_cast<int64_t>(got.size()), got.data());
      CHECK(got == docs[d]);
    }
    CHECK(std::filesystem::file_size(prefix + ".bin") ==
          static_cast<uintmax_t>(64 + s->num_tokens() * s->info().token_bytes));
    CHECK(s->locate_token(5) == prefix + ".bin:" + std::to_string(64 + 5 * s->info().token_bytes));
  }
}

TEST_CASE("shard validation errors name the file and byte offset") {
  TempDir dir;
  const std::string prefix = dir / "c";
  write_shard(prefix, make_docs(5));
  auto s = Shard::open(prefix);
  const int64_t ntok = s->num_tokens();
  s.reset();

  SUBCASE("truncated .bin") {
    std::string bin = read_file(prefix + ".bin");
    write_file(prefix + ".bin", bin.substr(0, bin.size() - 2));
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".bin:16");
    CHECK(contains(e, fmt::format("header says {} tokens of 2 bytes, but the file holds {} bytes", ntok, 2 * ntok - 2)));
  }
  SUBCASE("bad magic") {
    patch(prefix + ".bin", 0, "XXXXXXXX", 8);
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".bin:0");
    CHECK(contains(e, "bad magic"));
  }
  SUBCASE("index from another shard: document count") {
    write_shard(dir / "other", make_docs(6));
    std::filesystem::copy_file(dir / "other.idx", prefix + ".idx", std::filesystem::copy_options::overwrite_existing);
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".idx:16");
    CHECK(contains(e, "index lists 6 documents, but " + prefix + ".bin has 5"));
  }
  SUBCASE("truncated index") {
    std::string idx = read_file(prefix + ".idx");
    write_file(prefix + ".idx", idx.substr(0, idx.size() - 8));
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".idx:16");
    CHECK(contains(e, "header says 5 documents (6 offsets)"));
  }
  SUBCASE("an offset beyond the shard") {
    uint64_t big = static_cast<uint64_t>(ntok) + 50;
    patch(prefix + ".idx", 32 + 8 * 3, &big, 8);
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".idx:56");
    CHECK(contains(e, fmt::format("document 2 ends at token {}, beyond the {} tokens of {}.bin", big, ntok, prefix)));
  }
  SUBCASE("offsets going backwards") {
    uint64_t one = 1;
    patch(prefix + ".idx", 32 + 8 * 2, &one, 8);
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".idx:48");
    CHECK(contains(e, "document 1 ends at token 1, before it starts (token 3)"));
  }
  SUBCASE("missing index") {
    std::filesystem::remove(prefix + ".idx");
    auto e = expect_input_error([&] { Shard::open(prefix); });
    CHECK(e.where() == prefix + ".idx");
    CHECK(contains(e, "cannot open shard index"));
  }
}

TEST_CASE("packing: windows of T+1 tokens over the concatenated documents") {
  auto docs = make_docs(30);
  std::vector<int32_t> all;
  std::vector<int64_t> starts{0};
  for (const auto& d : docs) all.insert(all.end(), d.begin(), d.end()), starts.push_back(static_cast<int64_t>(all.size()));
  auto set = std::make_shared<InMemoryDocuments>("mem", all, starts);

  PackedSource ordered(set, 0, 30, 5, std::nullopt, "train");
  CHECK(ordered.size() == (static_cast<int64_t>(all.size()) - 1) / 5);
  std::vector<int32_t> tok(6);
  std::vector<uint8_t> mask(6);
  for (int64_t w = 0; w < ordered.size(); ++w) {
    ordered.read(w, tok.data(), mask.data());
    for (int t = 0; t < 6; ++t) CHECK(tok[t] == all[w * 5 + t]);
    CHECK(ordered.num_targets(w) == 5);
  }

  // Shuffled: the same documents, another order, fixed by the seed.
  PackedSource s1(set, 10, 15, 5, 7, "train"), s2(set, 10, 15, 5, 7, "train"), s3(set, 10, 15, 5, 8, "train");
  std::set<int64_t> docs_seen;
  bool differs = false;
  for (int64_t i = 0; i < 15; ++i) {
    CHECK(s1.document_at(i) == s2.document_at(i));
    differs |= s1.document_at(i) != s3.document_at(i);
    docs_seen.insert(s1.document_at(i));
  }
  CHECK(differs);
  CHECK(docs_seen.size() == 15);
  CHECK(*docs_seen.begin() == 10);
  CHECK(*docs_seen.rbegin() == 24);
  // The first window starts with the first document of the shuffled order.
  s1.read(0, tok.data(), mask.data());
  CHECK(tok[0] == all[starts[s1.document_at(0)]]);
  CHECK(s1.locate(0, 0) == "mem: token " + std::to_string(starts[s1.document_at(0)]));
}

TEST_CASE("--split parsing and ranges") {
  auto s = parse_split("9998,2,0");
  CHECK(s.weights[0] == 9998);
  CHECK(parse_split("969/30/1").weights[1] == 30);
  CHECK(parse_split("1").weights[2] == 0);
  for (const char* bad : {"a,b", "-1,2", "0,0,0", "1,2,3,4", "", "1,,2"}) {
    CAPTURE(bad);
    auto e = expect_input_error([&] { parse_split(bad); });
    CHECK(e.where() == "--split");
  }
  for (int64_t n : {0, 1, 7, 10000, 12345}) {
    auto r = split_ranges(n, parse_split("969,30,1"));
    CHECK(r[0].begin == 0);
    CHECK(r[0].end == r[1].begin);
    CHECK(r[1].end == r[2].begin);
    CHECK(r[2].end == n);
  }
  auto r = split_ranges(10000, parse_split("9998,2,0"));
  CHECK(r[0].size() == 9998);
  CHECK(r[1].size() == 2);
  CHECK(r[2].size() == 0);
}

TEST_CASE("splits of a shard are disjoint and cover all documents") {
  TempDir dir;
  write_shard(dir / "corpus", make_docs(400));
  DataOptions o;
  o.data_path = {dir / "corpus"};
  o.split = "8,1,1";
  o.seq_len = 16;
  o.seed = 1;
  DataSources d = open_data(o);
  CHECK(d.shuffle);
  CHECK(d.tokenizer_vocab_size == 1000);
  std::vector<std::shared_ptr<const SampleSource>> parts{d.train, d.valid, d.test};
  std::set<int64_t> all;
  std::vector<size_t> sizes;
  for (auto& p : parts) {
    auto packed = std::dynamic_pointer_cast<const PackedSource>(p);
    REQUIRE(packed);
    for (int64_t i = 0; i < packed->num_documents(); ++i) all.insert(packed->document_at(i));
    sizes.push_back(static_cast<size_t>(packed->num_documents()));
  }
  CHECK(sizes == std::vector<size_t>{320, 40, 40});
  CHECK(all.size() == 400);
  // Validation documents come after the train ones in file order.
  auto valid = std::dynamic_pointer_cast<const PackedSource>(d.valid);
  for (int64_t i = 0; i < valid->num_documents(); ++i) {
    CHECK(valid->document_at(i) >= 320);
    CHECK(valid->document_at(i) < 360);
  }
}

TEST_CASE("token file splits are consecutive window ranges, read in order") {
  TempDir dir;
  std::vector<int32_t> ids(10 * 100 + 1);
  std::iota(ids.begin(), ids.end(), 0);
  write_token_file(dir / "t.tokens", ids);
  DataOptions o;
  o.data_path = {dir / "t.tokens"};
  o.split = "90,10";
  o.seq_len = 10;
  DataSources d = open_data(o);
  CHECK_FALSE(d.shuffle);
  REQUIRE(d.train->size() == 90);
  REQUIRE(d.valid->size() == 10);
  CHECK(d.test == nullptr);
  std::vector<int32_t> tok(11);
  std::vector<uint8_t> mask(11);
  d.valid->read(0, tok.data(), mask.data());
  CHECK(tok[0] == 900);
  d.train->read(89, tok.data(), mask.data());
  CHECK(tok[10] == 900);  // the only token train and validation share is a window edge
}

TEST_CASE("blend: every prefix follows the weights; parts continue across epochs") {
  TempDir dir;
  std::vector<int32_t> a(100 * 4 + 1, 1), b(1000 * 4 + 1, 2);
  write_token_file(dir / "a.tokens", a);
  write_token_file(dir / "b.tokens", b);
  auto fa = TokenFile::open(dir / "a.tokens");
  auto fb = TokenFile::open(dir / "b.tokens");
  auto sa = std::make_shared<TokenFileSource>(fa, 4, 0, 100);
  auto sb = std::make_shared<TokenFileSource>(fb, 4, 0, 1000);
  BlendedSource blend({sa, sb}, {3, 7});
  REQUIRE(blend.size() == 1100);
  int64_t count[2] = {0, 0};
  double worst = 0;
  for (int64_t p = 0; p < blend.size(); ++p) {
    int part = blend.part_of(p);
    CHECK(blend.part_index(p) == count[part]);
    ++count[part];
    worst = std::max(worst, std::fabs(static_cast<double>(count[0]) - 0.3 * static_cast<double>(p + 1)));
  }
  CHECK(worst < 1.0);
  CHECK(count[0] == 330);
  CHECK(count[1] == 770);
  // Epoch 1 continues each part where epoch 0 stopped.
  CHECK(blend.part_of(1100) == blend.part_of(0));
  CHECK(blend.part_index(1100) == (blend.part_of(0) == 0 ? 330 : 770));
  int32_t tok[5];
  uint8_t mask[5];
  for (int64_t p = 0; p < 50; ++p) {
    blend.read(p, tok, mask);
    CHECK(tok[0] == (blend.part_of(p) == 0 ? 1 : 2));
  }
  CHECK(blend.locate(0, 1).find(blend.part_of(0) == 0 ? "a.tokens" : "b.tokens") != std::string::npos);
}

TEST_CASE("--data_path with weights opens a blend per split") {
  TempDir dir;
  write_shard(dir / "x", make_docs(300));
  write_shard(dir / "y", make_docs(200));
  DataOptions o;
  o.data_path = split_data_path("0.25 " + (dir / "x") + " 0.75 " + (dir / "y"));
  o.split = "9,1,0";
  o.seq_len = 8;
  DataSources d = open_data(o);
  auto train = std::dynamic_pointer_cast<const BlendedSource>(d.train);
  REQUIRE(train);
  CHECK(train->weights()[0] == doctest::Approx(0.25));
  int64_t first = 0;
  for (int64_t p = 0; p < train->size(); ++p) first += train->part_of(p) == 0;
  CHECK(static_cast<double>(first) == doctest::Approx(0.25 * static_cast<double>(train->size())).epsilon(0.01));
  CHECK(d.valid != nullptr);
  CHECK(d.test == nullptr);
}

TEST_CASE("--data_path errors") {
  TempDir dir;
  DataOptions o;
  o.seq_len = 8;
  o.data_path = {"0.5", dir / "a", "0.5"};
  auto e = expect_input_error([&] { open_data(o); });
  CHECK(e.where() == "--data_path");
  o.data_path = {"heavy", dir / "a"};
  e = expect_input_error([&] { open_data(o); });
  CHECK(contains(e, "'heavy' (word 1) is not a positive weight"));
  o.data_path = {dir / "missing"};
  e = expect_input_error([&] { open_data(o); });
  CHECK(e.where() == dir / "missing");
  CHECK(contains(e, "no such file or shard"));
  write_file(dir / "notes.txt", "hello");
  o.data_path = {dir / "notes.txt"};
  e = expect_input_error([&] { open_data(o); });
  CHECK(contains(e, "not a recognised dataset"));
  write_shard(dir / "tiny", make_docs(2));
  o.data_path = {dir / "tiny"};
  o.seq_len = 64;
  e = expect_input_error([&] { open_data(o); });
  CHECK(e.where() == dir / "tiny");
  CHECK(contains(e, "fewer than one sample of seq_len+1 = 65 tokens"));
}

TEST_CASE("synthetic data path: default and seeded") {
  DataOptions o;
  o.seq_len = 128;
  DataSources d = open_data(o);
  CHECK(d.train->size() > 10000);
  CHECK(d.valid != nullptr);
  CHECK(d.tokenizer_vocab_size == 258);
  o.data_path = {"synthetic:3"};
  DataSources e = open_data(o);
  std::vector<int32_t> a(129), b(129);
  std::vector<uint8_t> m(129);
  d.train->read(0, a.data(), m.data());
  e.train->read(0, b.data(), m.data());
  CHECK(a != b);
  o.data_path = {"synthetic:x"};
  auto err = expect_input_error([&] { open_data(o); });
  CHECK(err.where() == "--data_path");
}
