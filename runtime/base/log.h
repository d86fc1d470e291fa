// Console and per-rank log file output.
//
// Every line goes to the rank's log file (when one is open). On the console, `info` is printed by
// rank 0 only (one copy of each step line, not one per rank); `warn` and `error` by every rank,
// prefixed with "[rank R]" when the world has more than one rank so a failure names its rank.
#pragma once

#include <fmt/format.h>

#include <string>

namespace fm::log {

void set_rank(int rank, int world_size);
int rank();
int world_size();

// Opens (appends to) the rank's log file; failure is an InputError naming the path.
void open_file(const std::string& path);
void close_file();

// Silences console `info` output (tests, tools that print their own results).
void set_quiet(bool quiet);

void write_info(const std::string& line);
void write_info_all_ranks(const std::string& line);
void write_warn(const std::string& line);
void write_error(const std::string& line);

template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  write_info(fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info_all(fmt::format_string<Args...> f, Args&&... args) {
  write_info_all_ranks(fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  write_warn(fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  write_error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace fm::log
