#include "launcher/env_export.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "runtime/base/error.h"

extern char** environ;

namespace fm::launcher {

bool is_valid_env_name(std::string_view name) {
  if (name.empty()) return false;
  if (!(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

bool is_secret_name(std::string_view name) {
  std::string upper(name);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const char* word : {"KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL"})
    if (upper.find(word) != std::string::npos) return true;
  return false;
}

EnvVar parse_env_assignment(std::string_view text, const std::string& where) {
  size_t eq = text.find('=');
  if (eq == std::string_view::npos)
    throw InputError(where, fmt::format("'{}' is not KEY=VALUE", text), "write KEY=VALUE, e.g. NCCL_DEBUG=INFO");
  std::string name(text.substr(0, eq));
  if (!is_valid_env_name(name))
    throw InputError(where, fmt::format("'{}' is not a valid variable name", name),
                     "names are letters, digits and '_', not starting with a digit");
  return {name, std::string(text.substr(eq + 1))};
}

std::vector<EnvVar> parse_env_file(std::string_view text, const std::string& path) {
  std::vector<EnvVar> vars;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;
    line.remove_prefix(first);
    if (line.rfind("export ", 0) == 0 || line.rfind("export\t", 0) == 0) {
      line.remove_prefix(7);
      line.remove_prefix(std::min(line.find_first_not_of(" \t"), line.size()));
    }
    const std::string where = fmt::format("{}:{}", path, line_no);
    if (line.find('=') == std::string_view::npos)
      throw InputError(where, fmt::format("line '{}' has no '='", line), "each line is KEY=VALUE (or a # comment)");
    EnvVar v = parse_env_assignment(line, where);
    if (v.value.size() >= 2 && (v.value.front() == '"' || v.value.front() == '\'') &&
        v.value.back() == v.value.front())
      v.value = v.value.substr(1, v.value.size() - 2);
    vars.push_back(std::move(v));
  }
  return vars;
}

std::vector<EnvVar> read_env_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError("--env_file", fmt::format("cannot read env file '{}'", path),
                     "give a file of KEY=VALUE lines");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_env_file(ss.str(), path);
}

bool is_exported_by_default(std::string_view name) {
  for (const char* prefix : {"NCCL_", "UCX_", "FI_", "OMP_", "FM_"})
    if (name.rfind(prefix, 0) == 0) return true;
  return name == "PATH" || name == "LD_LIBRARY_PATH";
}

namespace {
void upsert(std::vector<EnvVar>& out, const EnvVar& v) {
  for (auto& e : out)
    if (e.name == v.name) {
      e.value = v.value;
      return;
    }
  out.push_back(v);
}
}  // namespace

std::vector<EnvVar> collect_exports(const std::vector<EnvVar>& inherited, const std::vector<EnvVar>& file_vars,
                                    const std::vector<EnvVar>& cli_vars) {
  std::vector<EnvVar> out;
  for (const auto* src : {&inherited, &file_vars, &cli_vars})
    for (const auto& v : *src) upsert(out, v);
  return out;
}

std::vector<EnvVar> current_environment() {
  std::vector<EnvVar> out;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    out.push_back({std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1))});
  }
  return out;
}

std::vector<std::string> current_environment_block() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

std::vector<EnvVar> default_exports(const std::vector<EnvVar>& environment) {
  std::vector<EnvVar> out;
  for (const auto& v : environment)
    if (is_exported_by_default(v.name)) out.push_back(v);
  std::sort(out.begin(), out.end(), [](const EnvVar& a, const EnvVar& b) { return a.name < b.name; });
  return out;
}

std::vector<EnvVar> masked(const std::vector<EnvVar>& vars) {
  std::vector<EnvVar> out = vars;
  for (auto& v : out)
    if (is_secret_name(v.name)) v.value = kMasked;
  return out;
}

std::string display_value(const EnvVar& var) { return is_secret_name(var.name) ? kMasked : var.value; }

void apply_env(std::vector<std::string>& block, const std::vector<EnvVar>& vars) {
  for (const auto& v : vars) {
    const std::string prefix = v.name + "=";
    auto it = std::find_if(block.begin(), block.end(), [&](const std::string& kv) { return kv.rfind(prefix, 0) == 0; });
    if (it != block.end()) {
      *it = prefix + v.value;
    } else {
      block.push_back(prefix + v.value);
    }
  }
}

std::vector<std::string> env_block(const std::vector<EnvVar>& vars) {
  std::vector<std::string> out;
  apply_env(out, vars);
  return out;
}

const char* find_env(const std::vector<std::string>& block, std::string_view name) {
  for (const auto& kv : block)
    if (kv.size() > name.size() && kv.compare(0, name.size(), name) == 0 && kv[name.size()] == '=')
      return kv.c_str() + name.size() + 1;
  return nullptr;
}

}  // namespace fm::launcher
