// Every file in tests/config/bad/ is a config that must be refused. Each opens with comment lines
// holding its expectation:
//   // where: <the InputError's where; "@" stands for the file's path>
//   // message: <a substring of the problem text; "@" as above>
//   // hint: <optional: a substring of the hint>
//   // dp: <optional: the data-parallel size to resolve with (default 1)>
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "config_test_util.h"
#include "runtime/base/error.h"
#include "runtime/config/ds_config.h"

namespace fm::runtime {
namespace {

struct Expectation {
  std::map<std::string, std::string> fields;
  std::string get(const std::string& k) const {
    auto it = fields.find(k);
    return it == fields.end() ? std::string{} : it->second;
  }
};

Expectation read_expectation(const std::string& text) {
  Expectation e;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line) && line.rfind("//", 0) == 0) {
    std::string body = line.substr(2);
    size_t colon = body.find(':');
    if (colon == std::string::npos) continue;
    std::string key = body.substr(0, colon);
    key.erase(0, key.find_first_not_of(' '));
    if (key != "where" && key != "message" && key != "hint" && key != "dp") continue;
    std::string value = body.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    e.fields[key] = value;
  }
  return e;
}

std::string substitute(std::string s, const std::string& path) {
  for (size_t p = 0; (p = s.find('@', p)) != std::string::npos; p += path.size()) s.replace(p, 1, path);
  return s;
}

std::vector<std::string> bad_cases() {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(test::source_dir() + "/tests/config/bad"))
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  return files;
}

TEST_CASE("every malformed config is an InputError with the expected where and message") {
  std::vector<std::string> files = bad_cases();
  CHECK(files.size() >= 30);
  for (const std::string& path : files) {
    CAPTURE(path);
    Expectation e = read_expectation(test::read_text(path));
    REQUIRE_MESSAGE(!e.get("where").empty(), "no '// where:' line in " << path);
    REQUIRE_MESSAGE(!e.get("message").empty(), "no '// message:' line in " << path);
    int dp = e.get("dp").empty() ? 1 : std::stoi(e.get("dp"));
    bool threw = false;
    try {
      DsConfig cfg = load_ds_config(path);
      ResolveContext ctx;
      ctx.train_steps = 100;
      ctx.dp_size = dp;
      ctx.hidden_size = 64;
      ctx.pipe_parallel_size = 1;
      resolve_ds_config(cfg, ctx);
    } catch (const InputError& err) {
      threw = true;
      CHECK(err.where() == substitute(e.get("where"), path));
      std::string message = substitute(e.get("message"), path);
      CHECK_MESSAGE(err.problem().find(message) != std::string::npos,
                    "problem: " << err.problem() << "\nexpected to contain: " << message);
      if (!e.get("hint").empty())
        CHECK_MESSAGE(err.hint().find(e.get("hint")) != std::string::npos,
                      "hint: " << err.hint() << "\nexpected to contain: " << e.get("hint"));
      // The printed form names the place first.
      CHECK(format_input_error(err).rfind("error: " + err.where() + ": ", 0) == 0);
    }
    CHECK_MESSAGE(threw, path << " was accepted");
  }
}

// The expectation lines are parsed from the files themselves; make sure the parser of those lines
// does not silently read nothing.
TEST_CASE("expectation lines are read") {
  Expectation e = read_expectation("// where: a.b\n// message: m x\n// dp: 3\n{}\n// where: later\n");
  CHECK(e.get("where") == "a.b");
  CHECK(e.get("message") == "m x");
  CHECK(e.get("dp") == "3");
}

}  // namespace
}  // namespace fm::runtime
