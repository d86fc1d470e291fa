#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "runtime/base/error.h"
#include "runtime/checkpoint/xxhash64.h"

using namespace fm::checkpoint;

namespace {

std::vector<unsigned char> pattern(size_t n) {
  std::vector<unsigned char> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<unsigned char>((i * 131 + 7) & 255);
  return b;
}

// XXH64 of pattern(n) with seeds 0 and 0x9E3779B97F4A7C15, from the reference library
// (libxxhash 0.8.1, XXH64()).
struct Vector {
  size_t n;
  uint64_t seed0, seed1;
};
const Vector kVectors[] = {
    {0, 0xef46db3751d8e999ULL, 0xc4349fc93c010000ULL},
    {1, 0xa96c7f0ce858bbb7ULL, 0x585882422a6165e7ULL},
    {3, 0xbed43740ee6332bbULL, 0x45fa1406538fa168ULL},
    {4, 0xfa212ae44b3bb23dULL, 0xa65107f22943365aULL},
    {7, 0x2744460dd675d2c0ULL, 0xc9b637e2c4599de2ULL},
    {8, 0x994b676b71ce94ddULL, 0xce592d5f53e192ecULL},
    {12, 0xb92f588ce720786eULL, 0xbc37a5ae43141b1aULL},
    {31, 0x6711d55e306b5d8fULL, 0x24c4e99ab0404b5eULL},
    {32, 0x07f7b8e3bc5d6e25ULL, 0x046e99bbda1a814bULL},
    {33, 0x09f85eeb4e1cbe9fULL, 0xd7fe2bfee6e4cdedULL},
    {63, 0xb7c9968c066cb6a5ULL, 0xbd457f9ea47180c8ULL},
    {64, 0x50d4159a0411632eULL, 0xa768f350a8e4fcf6ULL},
    {100, 0x9ddada11d3dc2d8fULL, 0x35546bd9a4779ae4ULL},
    {1000, 0x0bf0bdbcc82eb373ULL, 0x3ecb5d7b5e7c64cfULL},
    {4101, 0xda04d26da79591c6ULL, 0xaf5b89dbdd4fdbe1ULL},
};

}  // namespace

TEST_CASE("xxh64 equals the reference implementation") {
  for (const Vector& v : kVectors) {
    CAPTURE(v.n);
    const auto b = pattern(v.n);
    CHECK(xxh64(b.data(), b.size(), 0) == v.seed0);
    CHECK(xxh64(b.data(), b.size(), 0x9E3779B97F4A7C15ULL) == v.seed1);
  }
}

TEST_CASE("xxh64 streaming does not depend on how the bytes are cut") {
  const auto b = pattern(4101);
  const uint64_t whole = xxh64(b.data(), b.size());
  for (size_t step : {size_t{1}, size_t{5}, size_t{31}, size_t{32}, size_t{33}, size_t{1000}}) {
    CAPTURE(step);
    Xxh64 h;
    for (size_t at = 0; at < b.size(); at += step) h.update(b.data() + at, std::min(step, b.size() - at));
    CHECK(h.digest() == whole);
  }
}

TEST_CASE("checksum hex round trip and file digest") {
  uint64_t v = 0;
  CHECK(checksum_hex(0x0123456789abcdefULL) == "0123456789abcdef");
  CHECK(parse_checksum_hex("0123456789abcdef", v));
  CHECK(v == 0x0123456789abcdefULL);
  CHECK_FALSE(parse_checksum_hex("0123456789ABCDEF", v));
  CHECK_FALSE(parse_checksum_hex("0123", v));

  const auto dir = std::filesystem::temp_directory_path() / ("fm-xxh-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto b = pattern(1000);
  {
    std::ofstream out(dir / "f.bin", std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  }
  const FileDigest d = digest_file((dir / "f.bin").string());
  CHECK(d.bytes == 1000);
  CHECK(d.checksum == 0x0bf0bdbcc82eb373ULL);
  CHECK_THROWS_AS(digest_file((dir / "missing.bin").string()), fm::InputError);
  std::filesystem::remove_all(dir);
}
