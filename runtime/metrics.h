// Training metrics: one JSON object per line in <output_dir>/metrics.jsonl, written by rank 0.
//
// A train record holds at least step, loss, lr, grad_norm, tokens_per_s; an eval record holds
// step and val_loss. Numbers are written in shortest round-trip form, so the file carries the exact
// fp32/fp64 values the run computed (tests compare losses bit for bit across layouts and resumes).
// Each line is flushed when written: a killed run leaves every completed step on disk.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace fm::runtime {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Appends to `path` (a resumed run continues the same file); InputError if it cannot be opened.
  explicit MetricsWriter(const std::string& path);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  MetricsWriter(MetricsWriter&& o) noexcept : file_(o.file_), path_(std::move(o.path_)) { o.file_ = nullptr; }
  MetricsWriter& operator=(MetricsWriter&& o) noexcept {
    std::swap(file_, o.file_);
    std::swap(path_, o.path_);
    return *this;
  }

  bool is_open() const { return file_ != nullptr; }

  // Writes {"step": step, k1: v1, ...} in the given order.
  void write(int64_t step, const std::vector<std::pair<std::string, double>>& fields);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace fm::runtime
