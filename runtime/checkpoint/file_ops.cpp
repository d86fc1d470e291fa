#include "runtime/checkpoint/file_ops.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "runtime/base/error.h"

namespace fm::checkpoint {
namespace fs = std::filesystem;

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw RuntimeFault("cannot open directory " + dir + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); their renames are then as durable as
  // they get.
  if (rc != 0 && err != EINVAL)
    throw RuntimeFault("cannot fsync directory " + dir + ": " + std::strerror(err));
}

void write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeFault("cannot write " + tmp + ": " + std::strerror(errno));
  const char* p = text.data();
  size_t left = text.size();
  int err = 0;
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    p += n;
    left -= size_t(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw RuntimeFault("cannot write " + path + ": " + std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    ::unlink(tmp.c_str());
    throw RuntimeFault("cannot rename " + tmp + " to " + path + ": " + std::strerror(err));
  }
  fsync_dir(fs::path(path).parent_path().empty() ? "." : fs::path(path).parent_path().string());
}

std::string read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw InputError(path, "cannot read");
  return out;
}

bool remove_tree(const std::string& path, std::string* why) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec && why) *why = ec.message();
  return !ec;
}

std::string unique_token() {
  std::random_device rd;
  const uint64_t t = uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  const uint64_t r = (uint64_t(rd()) << 32) ^ rd() ^ (t * 0x9E3779B97F4A7C15ULL) ^ uint64_t(::getpid());
  char buf[32];
  std::snprintf(buf, sizeof buf, "%x-%08llx", unsigned(::getpid()),
                static_cast<unsigned long long>(r & 0xffffffffULL));
  return buf;
}

}  // namespace fm::checkpoint
