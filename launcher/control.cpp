#include "launcher/control.h"

#include <fmt/format.h>

#include "runtime/base/text.h"

namespace fm::launcher {

std::string format_heartbeat(int node) { return fmt::format("{}hb node={}", kControlPrefix, node); }

std::string format_failure(int node, int rank, int code, const std::string& host, const std::string& status) {
  return fmt::format("{}fail node={} rank={} code={} host={} status={}", kControlPrefix, node, rank, code, host, status);
}

std::optional<ControlMessage> parse_control_line(std::string_view line) {
  if (line.substr(0, kControlPrefix.size()) != kControlPrefix) return std::nullopt;
  line.remove_prefix(kControlPrefix.size());
  ControlMessage m;
  size_t sp = line.find(' ');
  m.kind = std::string(line.substr(0, sp));
  line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  while (!line.empty()) {
    if (line.substr(0, 7) == "status=") {
      m.status = std::string(line.substr(7));  // the rest of the line
      break;
    }
    sp = line.find(' ');
    std::string_view tok = line.substr(0, sp);
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    size_t eq = tok.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = tok.substr(0, eq), val = tok.substr(eq + 1);
    long long v = 0;
    if (key == "host") {
      m.host = std::string(val);
    } else if (parse_int64(val, v)) {
      if (key == "node") m.node = static_cast<int>(v);
      if (key == "rank") m.rank = static_cast<int>(v);
      if (key == "code") m.code = static_cast<int>(v);
    }
  }
  if (m.kind != "hb" && m.kind != "fail") return std::nullopt;
  return m;
}

std::string describe_failure(const JobOutcome& out) {
  if (out.failed_rank < 0) return out.status;
  return fmt::format("rank {} (host {}) {}", out.failed_rank, out.failed_host, out.status);
}

}  // namespace fm::launcher
