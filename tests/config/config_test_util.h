// Shared helpers of the config tests: locating the checkout and reading files.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace fm::runtime::test {

// FM_SOURCE_DIR is set by meson (tests/meson.build); without it the file-based tests cannot run.
inline std::string source_dir() {
  const char* dir = std::getenv("FM_SOURCE_DIR");
  if (!dir || !*dir) FAIL("FM_SOURCE_DIR is not set: run the tests through meson test or scripts/test.sh");
  return dir;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace fm::runtime::test
