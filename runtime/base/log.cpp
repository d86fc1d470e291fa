#include "runtime/base/log.h"

#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <mutex>

#include "runtime/base/error.h"

namespace fm::log {
namespace {
std::mutex g_mu;
int g_rank = 0;
int g_world = 1;
bool g_quiet = false;
std::FILE* g_file = nullptr;

// "[rank R] " in a multi-rank world, unless a launcher (fmlaunch) already tags every line.
std::string prefix() {
  static const bool tagged = [] {
    const char* v = std::getenv("FM_LAUNCHER_TAGS");
    return v && std::string_view(v) == "1";
  }();
  return g_world > 1 && !tagged ? fmt::format("[rank {}] ", g_rank) : std::string{};
}

void emit(std::FILE* console, const std::string& line, bool to_console) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (to_console) {
    std::fputs(line.c_str(), console);
    std::fputc('\n', console);
    std::fflush(console);
  }
  if (g_file) {
    std::fputs(line.c_str(), g_file);
    std::fputc('\n', g_file);
    std::fflush(g_file);
  }
}
}  // namespace

void set_rank(int rank, int world_size) { g_rank = rank, g_world = world_size; }
int rank() { return g_rank; }
int world_size() { return g_world; }
void set_quiet(bool quiet) { g_quiet = quiet; }

void open_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_file) std::fclose(g_file);
  g_file = std::fopen(path.c_str(), "a");
  if (!g_file) throw InputError(path, "cannot open the log file for writing", "check that --output_dir is writable");
}

void close_file() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_file) std::fclose(g_file);
  g_file = nullptr;
}

void write_info(const std::string& line) { emit(stdout, line, g_rank == 0 && !g_quiet); }
void write_info_all_ranks(const std::string& line) { emit(stdout, prefix() + line, !g_quiet); }
void write_warn(const std::string& line) { emit(stderr, prefix() + "warning: " + line, true); }
void write_error(const std::string& line) { emit(stderr, prefix() + "error: " + line, true); }

}  // namespace fm::log
