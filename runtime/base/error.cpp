#include "runtime/base/error.h"

#include <cstdio>
#include <cstdlib>

namespace fm {

static std::string compose(const std::string& where, const std::string& what, const std::string& hint) {
  std::string s = where.empty() ? what : where + ": " + what;
  if (!hint.empty()) s += "\n  hint: " + hint;
  return s;
}

InputError::InputError(std::string where, std::string what, std::string hint)
    : std::runtime_error(compose(where, what, hint)),
      where_(std::move(where)),
      problem_(std::move(what)),
      hint_(std::move(hint)) {}

std::string format_input_error(const InputError& e) { return std::string("error: ") + e.what(); }

void check_failed(const char* expr, const char* file, int line, const std::string& msg) {
  std::fprintf(stderr, "internal error: %s:%d: check failed: %s%s%s\n", file, line, expr,
               msg.empty() ? "" : ": ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace fm
