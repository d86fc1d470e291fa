#include "runtime/metrics.h"

#include <fmt/format.h>

#include <cmath>

#include "runtime/base/error.h"

namespace fm::runtime {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw InputError(path, "cannot open the metrics file for writing", "check that --output_dir is writable");
}

MetricsWriter::~MetricsWriter() {
  if (file_) std::fclose(file_);
}

void MetricsWriter::write(int64_t step, const std::vector<std::pair<std::string, double>>& fields) {
  if (!file_) return;
  std::string line = fmt::format("{{\"step\": {}", step);
  for (const auto& [key, value] : fields) {
    // JSON has no NaN/Inf: a diverged loss is written as null rather than an unreadable file.
    if (std::isfinite(value)) line += fmt::format(", \"{}\": {}", key, value);
    else line += fmt::format(", \"{}\": null", key);
  }
  line += "}\n";
  std::fputs(line.c_str(), file_);
  std::fflush(file_);
}

}  // namespace fm::runtime
