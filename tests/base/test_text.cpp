#include <doctest/doctest.h>

#include "runtime/base/text.h"

TEST_CASE("edit distance and nearest word") {
  CHECK(fm::edit_distance("kitten", "sitting") == 3);
  CHECK(fm::edit_distance("", "abc") == 3);
  CHECK(fm::nearest_word("train_batch_szie", {"train_batch_size", "steps_per_print"}) == "train_batch_size");
  CHECK(fm::nearest_word("xyz", {"train_batch_size", "steps_per_print"}).empty());
  CHECK(fm::suggestion_hint("optimzer", {"optimizer", "scheduler"}) == "did you mean 'optimizer'?");
}

TEST_CASE("line and column of an offset") {
  auto lc = fm::line_col_at("ab\ncd\nef", 4);
  CHECK(lc.line == 2);
  CHECK(lc.col == 2);
}

TEST_CASE("strict number parsing") {
  long long i = 0;
  CHECK(fm::parse_int64("42", i));
  CHECK(i == 42);
  CHECK_FALSE(fm::parse_int64("42x", i));
  CHECK_FALSE(fm::parse_int64("", i));
  double d = 0;
  CHECK(fm::parse_double("1e-4", d));
  CHECK(d == doctest::Approx(1e-4));
  CHECK_FALSE(fm::parse_double("nan", d));
  CHECK_FALSE(fm::parse_double("1.0.0", d));
}

TEST_CASE("human readable sizes") {
  CHECK(fm::human_bytes(512) == "512 B");
  CHECK(fm::human_bytes(1536) == "1.50 KiB");
  CHECK(fm::human_count(1.1e9) == "1.10B");
}
