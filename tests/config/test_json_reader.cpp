#include <doctest/doctest.h>

#include "runtime/base/error.h"
#include "runtime/config/json_reader.h"

namespace fm::runtime {
namespace {

InputError parse_error(const std::string& text) {
  try {
    parse_json(text, "t.json");
  } catch (const InputError& e) {
    return e;
  }
  FAIL("accepted: " << text);
  return InputError("", "");
}

TEST_CASE("json: comments, trailing commas, literals and offsets") {
  const std::string text =
      "// leading comment\n"
      "{\n"
      "  /* block */ \"a\": 7,\n"
      "  \"b\": [7.0, 5e8, -3, \"s\\\"q\"],\n"
      "  \"c\": {\"t\": true, \"f\": false, \"n\": null,},\n"
      "}\n"
      "// trailing comment\n";
  JsonDocument doc = parse_json(text, "t.json");
  const JsonNode& r = doc.root;
  REQUIRE(r.is_object());
  REQUIRE(r.members.size() == 3);
  const JsonNode* a = r.find("a");
  REQUIRE(a);
  CHECK(a->is_integer_literal());
  CHECK(a->text == "7");
  CHECK(doc.location(a->offset) == "t.json:3:20");
  CHECK(doc.location(r.members[0].key_offset) == "t.json:3:15");
  const JsonNode* b = r.find("b");
  REQUIRE(b->items.size() == 4);
  CHECK(b->items[0].text == "7.0");
  CHECK_FALSE(b->items[0].is_integer_literal());
  CHECK_FALSE(b->items[1].is_integer_literal());
  CHECK(b->items[2].is_integer_literal());
  CHECK(b->items[3].text == "s\"q");
  CHECK(doc.location(b->items[3].offset) == "t.json:4:23");
  const JsonNode* c = r.find("c");
  CHECK(c->find("t")->boolean);
  CHECK(doc.location(c->find("t")->offset) == "t.json:5:14");
  CHECK(doc.location(c->find("f")->offset) == "t.json:5:25");
  CHECK(c->find("f")->is_bool());
  CHECK_FALSE(c->find("f")->boolean);
  CHECK(c->find("n")->is_null());
  CHECK(doc.location(c->find("n")->offset) == "t.json:5:37");
  CHECK(doc.location(c->offset) == "t.json:5:8");
  CHECK(describe_json_value(*c) == "an object");
  CHECK(describe_json_value(b->items[3]) == "the string \"s\"q\"");
  CHECK(describe_json_value(b->items[1]) == "the number 5e8");
}

TEST_CASE("json: syntax errors name file:line:column") {
  InputError e = parse_error("{\n  \"a\": 1\n  \"b\": 2\n}\n");
  CHECK(e.where() == "t.json:3:3");
  CHECK(e.problem().find("invalid JSON") != std::string::npos);

  CHECK(parse_error("").where() == "t.json:1:1");
  CHECK(parse_error("{\"a\": 1} {\"b\": 2}").problem().find("invalid JSON") != std::string::npos);
  CHECK(parse_error("{\"a\": NaN}").where() == "t.json:1:7");
  CHECK(parse_error("{\"a\": 1 /* open").problem().find("invalid JSON") != std::string::npos);
  CHECK(parse_error(std::string("{\"a\": 1}\0", 9)).problem().find("NUL") != std::string::npos);

  std::string deep(100, '[');
  deep += std::string(100, ']');
  CHECK(parse_error(deep).problem().find("nested") != std::string::npos);
}

TEST_CASE("json: duplicate keys name the path and both places") {
  InputError e = parse_error("{\"x\": {\"y\": [1, {\"k\": 1,\n \"k\": 2}]}}");
  CHECK(e.where() == "x.y[1].k");
  CHECK(e.problem() == "duplicate key (first at t.json:1:18, again at t.json:2:2)");
  // The same key in different objects is fine.
  CHECK_NOTHROW(parse_json("{\"a\": {\"k\": 1}, \"b\": {\"k\": 1}}", "t.json"));
}

TEST_CASE("json: unreadable file") {
  try {
    read_json_file("/nonexistent/dir/ds.json");
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(e.where() == "/nonexistent/dir/ds.json");
  }
}

TEST_CASE("json: path join") {
  CHECK(json_path_join("", "fp16") == "fp16");
  CHECK(json_path_join("fp16", "enabled") == "fp16.enabled");
}

}  // namespace
}  // namespace fm::runtime
