// Strict reading of JSON configuration text into a small tree that remembers where values are.
//
// Accepts standard JSON plus // and /* */ comments and trailing commas (what DeepSpeed's
// hjson-based loader is used for in practice); no other hjson extensions. Numbers keep the literal
// as written, so callers can tell 7 from 7.0 and quote the user's spelling back. Every value and
// key records its byte offset, so messages can point at file:line:column.
//
// Errors are fm::InputError:
//  - a syntax error: `where` = "<source>:<line>:<column>", what = the parser's description;
//  - a duplicate key in any object: `where` = the key's JSON path (e.g. "fp16.enabled").
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace fm::runtime {

struct JsonMember;

struct JsonNode {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::string text;                 // String: the value; Number: the literal as written
  std::vector<JsonNode> items;      // Array
  std::vector<JsonMember> members;  // Object, in document order
  size_t offset = 0;                // byte offset of the value's first character

  bool is_null() const { return kind == Kind::Null; }
  bool is_bool() const { return kind == Kind::Bool; }
  bool is_number() const { return kind == Kind::Number; }
  bool is_string() const { return kind == Kind::String; }
  bool is_array() const { return kind == Kind::Array; }
  bool is_object() const { return kind == Kind::Object; }
  // A number written without fraction or exponent ("7", "-3"; not "7.0" or "5e8").
  bool is_integer_literal() const;
  // The member named `key`, or nullptr.
  const JsonNode* find(std::string_view key) const;
};

struct JsonMember {
  std::string key;
  size_t key_offset = 0;
  JsonNode value;
};

struct JsonDocument {
  std::string source;  // file name (or a label) used in messages
  std::string text;
  JsonNode root;

  // "<source>:<line>:<column>" of a byte offset in `text`.
  std::string location(size_t offset) const;
};

// Parses `text`; `source` names it in messages.
JsonDocument parse_json(std::string text, std::string source);
// Reads and parses a file; an unreadable file is an InputError naming the path.
JsonDocument read_json_file(const std::string& path);

// How a value reads in a message: `the string "32"`, `the number 7.5`, `an object`, `null`, ...
std::string describe_json_value(const JsonNode& node);

// Appends a key to a JSON path: ("", "fp16") -> "fp16"; ("fp16", "enabled") -> "fp16.enabled".
std::string json_path_join(std::string_view parent, std::string_view key);

}  // namespace fm::runtime
