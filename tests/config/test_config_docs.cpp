// docs/config.md embeds the key and flag tables generated from the schema, so the documented
// defaults are the code's defaults. Run this test with FM_UPDATE_DOCS=1 to rewrite the generated
// blocks after changing a key or a flag.
#include <doctest/doctest.h>

#include <fstream>

#include "config_test_util.h"
#include "runtime/config/ds_config.h"
#include "runtime/config/train_args.h"

namespace fm::runtime {
namespace {

const std::string kEnd = "<!-- END GENERATED -->\n";

std::string begin_marker(const std::string& name) { return "<!-- BEGIN GENERATED: " + name + " -->\n"; }

// The text between a block's markers, or "<missing>".
std::string block(const std::string& doc, const std::string& name) {
  size_t b = doc.find(begin_marker(name));
  if (b == std::string::npos) return "<missing>";
  b += begin_marker(name).size();
  size_t e = doc.find(kEnd, b);
  if (e == std::string::npos) return "<missing>";
  return doc.substr(b, e - b);
}

std::string replace_block(std::string doc, const std::string& name, const std::string& body) {
  size_t b = doc.find(begin_marker(name));
  REQUIRE(b != std::string::npos);
  b += begin_marker(name).size();
  size_t e = doc.find(kEnd, b);
  REQUIRE(e != std::string::npos);
  return doc.replace(b, e - b, body);
}

TEST_CASE("docs/config.md holds the generated key and flag references") {
  const std::string path = test::source_dir() + "/docs/config.md";
  std::string doc = test::read_text(path);
  const std::vector<std::pair<std::string, std::string>> blocks = {
      {"ds_config_reference_markdown()", ds_config_reference_markdown()},
      {"train_args_reference_markdown()", train_args_reference_markdown()},
  };
  const char* update = std::getenv("FM_UPDATE_DOCS");
  if (update && std::string(update) == "1") {
    for (const auto& [name, body] : blocks) doc = replace_block(doc, name, body);
    std::ofstream(path, std::ios::binary) << doc;
  }
  for (const auto& [name, body] : blocks) {
    CAPTURE(name);
    CHECK_MESSAGE(block(doc, name) == body,
                  "docs/config.md is out of date; rerun this test with FM_UPDATE_DOCS=1 to regenerate");
  }
  // Every flag's help text is reachable from the docs too.
  CHECK(doc.find("--deepspeed_config") != std::string::npos);
}

}  // namespace
}  // namespace fm::runtime
