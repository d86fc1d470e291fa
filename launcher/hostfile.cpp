#include "launcher/hostfile.h"

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <sstream>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::launcher {
namespace {

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool is_ipv6(std::string_view s) {
  // Hex groups, ':' separators (at least two), optionally a dotted IPv4 tail.
  int colons = 0;
  for (char c : s) {
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (c == ':') {
      ++colons;
    } else if (!hex && c != '.') {
      return false;
    }
  }
  return colons >= 2 && s.size() <= 45;
}

std::vector<std::string> split_blanks(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur)), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

bool is_valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (is_ipv6(host)) return true;
  if (host.front() == '-' || host.front() == '.') return false;
  for (char c : host)
    if (!is_name_char(c)) return false;
  return true;
}

void check_host(std::string_view host, const std::string& where) {
  if (is_valid_host(host)) return;
  throw InputError(where, fmt::format("'{}' is not a valid host name", host),
                   "a host is a name made of letters, digits, '.', '_' and '-' (not starting with '-'), "
                   "or an IPv4/IPv6 address");
}

Hostfile parse_hostfile(std::string_view text, const std::string& path) {
  Hostfile hf;
  hf.path = path;
  std::map<std::string, int> seen;  // host -> line
  size_t pos = 0;
  int line_no = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    ++line_no;
    pos = end + 1;
    size_t hash = line.find('#');
    if (hash != std::string_view::npos) line = line.substr(0, hash);
    auto tokens = split_blanks(line);
    if (tokens.empty()) {
      if (end == text.size()) break;
      continue;
    }
    const std::string where = fmt::format("{}:{}", path, line_no);
    const std::string form_hint = "each line is 'HOST slots=N', e.g. 'node01 slots=8'";
    if (tokens.size() != 2 || tokens[1].rfind("slots=", 0) != 0) {
      throw InputError(where, fmt::format("bad hostfile line '{}'", std::string(line)), form_hint);
    }
    check_host(tokens[0], where);
    long long slots = 0;
    const std::string count = tokens[1].substr(6);
    if (!parse_int64(count, slots) || slots < 0)
      throw InputError(where, fmt::format("slots must be a positive integer, got '{}'", count), form_hint);
    if (slots == 0)
      throw InputError(where, fmt::format("host '{}' has zero slots", tokens[0]),
                       "give it at least one slot, or remove the line (or use --exclude)");
    if (slots > 1 << 16) throw InputError(where, fmt::format("slots={} is not plausible", slots), form_hint);
    auto [it, inserted] = seen.emplace(tokens[0], line_no);
    if (!inserted)
      throw InputError(where, fmt::format("host '{}' is listed twice (first at line {})", tokens[0], it->second),
                       "list each host once with its total slot count");
    hf.hosts.push_back({tokens[0], static_cast<int>(slots), line_no});
    if (end == text.size()) break;
  }
  if (hf.hosts.empty())
    throw InputError(path, "the hostfile lists no hosts", "add lines of the form 'HOST slots=N'");
  return hf;
}

Hostfile read_hostfile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError("--hostfile", fmt::format("cannot read hostfile '{}'", path),
                     "give the path of a file with lines 'HOST slots=N'");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_hostfile(ss.str(), path);
}

}  // namespace fm::launcher
