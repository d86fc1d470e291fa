// Errors for people.
//
// Two kinds of failure leave fmengine's programs:
//  - InputError: the user gave something wrong (a config key, a flag, a data file, a checkpoint, a
//    hostfile line). It names where (`where`: a JSON path, a flag, file:line), what is wrong, and a
//    hint. Programs print it once and exit with code 2, before any expensive work.
//  - RuntimeFault: something failed while running (a peer died, a disk filled up). Programs print it
//    naming the rank and exit non-zero (1).
// Programming errors (violated invariants) use FM_CHECK, which aborts with file:line.
#pragma once

#include <stdexcept>
#include <string>

namespace fm {

inline constexpr int kExitInputError = 2;
inline constexpr int kExitRuntimeFault = 1;

class InputError : public std::runtime_error {
 public:
  InputError(std::string where, std::string what, std::string hint = {});
  const std::string& where() const { return where_; }
  const std::string& problem() const { return problem_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string where_, problem_, hint_;
};

class RuntimeFault : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "error: <where>: <what>\n  hint: <hint>" — the single format every program prints.
std::string format_input_error(const InputError& e);

[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace fm

#define FM_CHECK(cond, ...)                                                             \
  do {                                                                                  \
    if (!(cond)) ::fm::check_failed(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
  } while (0)
