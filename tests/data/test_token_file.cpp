// Token files: round trip, windows and masks, and one test per malformed-file message.
#include <doctest/doctest.h>

#include <cstring>

#include <fmt/format.h>

#include "data/token_file.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::append_pod;
using fm::data::testing::expect_input_error;
using fm::data::testing::TempDir;
using fm::data::testing::write_file;

namespace {

std::string header(const char* magic, uint32_t version, uint32_t flags, uint64_t count) {
  std::string s(magic, 8);
  append_pod(s, version);
  append_pod(s, flags);
  append_pod(s, count);
  return s;
}

std::string has(const fm::InputError& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos ? "yes" : std::string("no: ") + e.what();
}

}  // namespace

TEST_CASE("token file: round trip with mask, windows overlap by one token") {
  TempDir dir;
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  for (int i = 0; i < 13; ++i) ids.push_back(100 + i), mask.push_back(i % 3 != 0);
  write_token_file(dir / "a.tokens", ids, &mask);
  CHECK(is_token_file(dir / "a.tokens"));
  auto f = TokenFile::open(dir / "a.tokens");
  REQUIRE(f->count() == 13);
  REQUIRE(f->mask() != nullptr);
  CHECK(count_token_windows(*f, 4) == 3);  // (13 - 1) / 4

  TokenFileSource src(f, 4, 0, 3);
  int32_t tok[5];
  uint8_t m[5];
  for (int w = 0; w < 3; ++w) {
    src.read(w, tok, m);
    int64_t targets = 0;
    for (int t = 0; t < 5; ++t) {
      CHECK(tok[t] == 100 + 4 * w + t);
      CHECK(m[t] == ((4 * w + t) % 3 != 0));
      if (t > 0) targets += m[t];
    }
    CHECK(src.num_targets(w) == targets);
  }
  // Indices past the end wrap (next epoch).
  src.read(4, tok, m);
  CHECK(tok[0] == 104);
  CHECK(src.locate(1, 2) == fmt::format("{}:{}", dir / "a.tokens", 24 + 4 * 6));

  // A sub-range (a split) starts at its own first window.
  TokenFileSource tail(f, 4, 2, 1);
  tail.read(0, tok, m);
  CHECK(tok[0] == 108);
}

TEST_CASE("token file: without mask every target counts") {
  TempDir dir;
  write_token_file(dir / "b.tokens", {1, 2, 3, 4, 5, 6, 7});
  auto f = TokenFile::open(dir / "b.tokens");
  CHECK(f->mask() == nullptr);
  TokenFileSource src(f, 3, 0, 2);
  CHECK(src.num_targets(0) == 3);
  int32_t tok[4];
  uint8_t m[4];
  src.read(1, tok, m);
  CHECK(tok[0] == 4);
  CHECK(m[1] == 1);
}

TEST_CASE("token file errors name the file and byte offset") {
  TempDir dir;
  const std::string p = dir / "bad.tokens";

  SUBCASE("shorter than the header") {
    write_file(p, "FMTOK");
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":0");
    CHECK(has(e, "shorter than the 24-byte") == "yes");
  }
  SUBCASE("bad magic") {
    std::string s = header("NOTTOKEN", 1, 0, 1);
    append_pod<int32_t>(s, 5);
    write_file(p, s);
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":0");
    CHECK(has(e, "bad magic 'NOTTOKEN'") == "yes");
  }
  SUBCASE("unsupported version") {
    write_file(p, header("FMTOKENS", 2, 0, 0));
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":8");
    CHECK(has(e, "version 2") == "yes");
  }
  SUBCASE("unknown flags") {
    write_file(p, header("FMTOKENS", 1, 6, 0));
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":12");
    CHECK(has(e, "unknown flag bits 0x6") == "yes");
  }
  SUBCASE("size does not match the header") {
    std::string s = header("FMTOKENS", 1, 0, 10);
    for (int i = 0; i < 9; ++i) append_pod<int32_t>(s, i);
    write_file(p, s);
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":16");
    CHECK(has(e, "header says 10 tokens, which needs 64 bytes, but the file has 60 bytes") == "yes");
  }
  SUBCASE("size does not match a header with mask") {
    std::string s = header("FMTOKENS", 1, 1, 4);
    for (int i = 0; i < 4; ++i) append_pod<int32_t>(s, i);
    write_file(p, s);
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":16");
    CHECK(has(e, "with a target mask") == "yes");
  }
  SUBCASE("negative id") {
    std::string s = header("FMTOKENS", 1, 0, 5);
    for (int32_t v : {1, 2, 3, -7, 5}) append_pod<int32_t>(s, v);
    write_file(p, s);
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":36");  // 24 + 4 * 3
    CHECK(has(e, "token 3 has id -7") == "yes");
  }
  SUBCASE("mask value other than 0/1") {
    std::string s = header("FMTOKENS", 1, 1, 3);
    for (int32_t v : {1, 2, 3}) append_pod<int32_t>(s, v);
    s += std::string("\x01\x02\x00", 3);
    write_file(p, s);
    auto e = expect_input_error([&] { TokenFile::open(p); });
    CHECK(e.where() == p + ":37");  // 24 + 12 + 1
    CHECK(has(e, "target mask of token 1 is 2") == "yes");
  }
  SUBCASE("fewer tokens than one window") {
    write_token_file(p, {1, 2, 3, 4});
    auto f = TokenFile::open(p);
    auto e = expect_input_error([&] { count_token_windows(*f, 8); });
    CHECK(e.where() == p + ":16");
    CHECK(has(e, "4 tokens, fewer than one sample of seq_len+1 = 9 tokens") == "yes");
  }
  SUBCASE("missing file") {
    auto e = expect_input_error([&] { TokenFile::open(dir / "nope.tokens"); });
    CHECK(e.where() == dir / "nope.tokens");
    CHECK(has(e, "cannot open token file") == "yes");
  }
}
