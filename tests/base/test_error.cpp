#include <doctest/doctest.h>

#include "runtime/base/error.h"

TEST_CASE("input errors carry where, what and hint") {
  fm::InputError e("optimizer.params.lr", "expected a number, got a string", "write 1e-4");
  CHECK(e.where() == "optimizer.params.lr");
  CHECK(fm::format_input_error(e) ==
        "error: optimizer.params.lr: expected a number, got a string\n  hint: write 1e-4");
}
