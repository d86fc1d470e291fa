// Unit tests of the tokenizer pieces. Parity with `tokenizers` on the real files is parity.py.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/hf_tokenizer.h"
#include "data/tokenizer/split_patterns.h"
#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/unicode.h"
#include "runtime/base/error.h"

namespace fs = std::filesystem;
using fm::data::load_hf_tokenizer;
using fm::data::hf::SplitPattern;

namespace {

std::vector<std::string> splits(SplitPattern p, std::string_view text) {
  std::vector<std::string> out;
  fm::data::hf::for_each_split(p, text, [&](std::string_view piece) { out.emplace_back(piece); });
  return out;
}

// A directory that is removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("fm_tokenizer_test_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    fs::path p = path / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

// A small sentencepiece-style tokenizer (LLaMA 2 shape): "▁" word starts, byte fallback for é.
const char* kTinyLlama2 = R"({
  "version": "1.0", "truncation": null, "padding": null,
  "added_tokens": [
    {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "</s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
  "normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
    {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": true,
    "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "▁": 3, "a": 4, "b": 5, "c": 6, "ab": 7, "▁ab": 8, "bc": 9,
              "<0xC3>": 10, "<0xA9>": 11, "aa": 12},
    "merges": ["a b", "▁ ab", "b c", "a a"]}
})";

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

// The InputError message of loading `json`, which must fail.
std::string load_error(const TempDir& dir, const std::string& json) {
  std::string path = dir.write("tokenizer.json", json);
  try {
    load_hf_tokenizer(path);
  } catch (const fm::InputError& e) {
    return e.what();
  }
  FAIL("loading succeeded");
  return {};
}

}  // namespace

TEST_CASE("byte tokenizer: every byte string round-trips") {
  fm::data::ByteTokenizer tok;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::vector<int32_t> ids = tok.encode(all, true);
  REQUIRE(ids.size() == 257);
  CHECK(ids.front() == tok.bos_id());
  CHECK(ids[1 + 0xff] == 0xff);
  CHECK(tok.decode(ids, true) == all);
  CHECK(tok.decode({tok.bos_id(), 'x', tok.eos_id()}, false) == "<bos>x<eos>");
  CHECK(tok.vocab_size() == 258);
}

TEST_CASE("utf-8 repair replaces each maximal invalid subsequence by one U+FFFD") {
  using fm::data::hf::repair_utf8;
  const std::string R = "\xEF\xBF\xBD";
  CHECK(repair_utf8("plain caf\xC3\xA9") == "plain caf\xC3\xA9");
  CHECK(repair_utf8("\xE2\x82" "A") == R + "A");          // truncated 3-byte sequence
  CHECK(repair_utf8("\xF0\x9F\x98") == R);                // truncated at the end
  CHECK(repair_utf8("\xF0\x80\x80") == R + R + R);        // F0 needs 90..BF next
  CHECK(repair_utf8("\xED\xA0\x80") == R + R + R);        // surrogates are not UTF-8
  CHECK(repair_utf8("\xC0\xAF") == R + R);                // overlong
  CHECK(repair_utf8("\xF4\x90\x80\x80") == R + R + R + R);  // above U+10FFFF
  CHECK(repair_utf8("a\xFF" "b\x80") == "a" + R + "b" + R);
  CHECK(fm::data::hf::is_valid_utf8("\xF0\x9F\x98\x80"));
  CHECK_FALSE(fm::data::hf::is_valid_utf8("abcdefgh\xC3"));
}

TEST_CASE("unicode classes") {
  using namespace fm::data::hf;
  CHECK(std::string(kUnicodeVersion) == "16.0.0");
  CHECK(is_letter(U'é'));
  CHECK(is_letter(0x105C0));  // Todhri, new in Unicode 16
  CHECK(is_number(U'٣'));
  CHECK(is_number(U'½'));
  CHECK_FALSE(is_letter(0x0301));  // combining acute: a mark
  CHECK(is_whitespace(0x3000));
  CHECK(is_whitespace(0x85));
  CHECK(is_whitespace(0x2028));
  CHECK_FALSE(is_whitespace(0x1C));  // Python's isspace says yes; the regex engines say no
  CHECK_FALSE(is_whitespace(0x200B));
  CHECK(is_word_char(0x0301));
  CHECK(is_word_char(U'_'));
  CHECK(is_word_char(0x24B6));  // circled Latin letter: Other_Alphabetic
  CHECK_FALSE(is_word_char(U'-'));
}

TEST_CASE("byte-level alphabet") {
  const auto& a = fm::data::hf::byte_level_alphabet();
  CHECK(a.char_of(' ') == 0x120);   // Ġ
  CHECK(a.char_of('\n') == 0x10A);  // Ċ
  CHECK(a.char_of('a') == 'a');
  CHECK(a.char_of(0xAD) == 0x143);  // the last of the 68 shifted bytes
  CHECK(a.char_of(0xE9) == 0xE9);
  std::string all, back;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  REQUIRE(a.to_bytes(a.to_text(all), back));
  CHECK(back == all);
  CHECK_FALSE(a.to_bytes("\xE2\x96\x81", back));  // ▁ is not in the alphabet
}

TEST_CASE("LLaMA 3 split pattern") {
  const SplitPattern L3 = SplitPattern::kLlama3;
  using V = std::vector<std::string>;
  CHECK(splits(L3, "Hello world") == V{"Hello", " world"});
  CHECK(splits(L3, "don't DON'T they'Re") == V{"don", "'t", " DON", "'T", " they", "'Re"});
  CHECK(splits(L3, "x'\xC5\xBF") == V{"x", "'\xC5\xBF"});  // 'ſ folds to 's
  CHECK(splits(L3, "12345678") == V{"123", "456", "78"});
  CHECK(splits(L3, "hi  \n\n  there   ") == V{"hi", "  \n\n", " ", " there", "   "});
  CHECK(splits(L3, "  x") == V{" ", " x"});
  CHECK(splits(L3, "\t\tfoo") == V{"\t", "\tfoo"});
  CHECK(splits(L3, "(hello) !!\n\nx") == V{"(hello", ")", " !!\n\n", "x"});
  CHECK(splits(L3, "caf\xC3\xA9 e\xCC\x81") == V{"caf\xC3\xA9", " e", "\xCC\x81"});
  CHECK(splits(L3, "") == V{});
}

TEST_CASE("GPT-2 split pattern") {
  const SplitPattern G = SplitPattern::kGpt2;
  using V = std::vector<std::string>;
  CHECK(splits(G, "DON'T don't") == V{"DON", "'", "T", " don", "'t"});
  CHECK(splits(G, "a  b") == V{"a", " ", " b"});
  CHECK(splits(G, "12345 x") == V{"12345", " x"});
  CHECK(splits(G, "a\n\nb") == V{"a", "\n", "\n", "b"});
  CHECK(fm::data::hf::split_pattern_of("\\s+") == std::nullopt);
}

TEST_CASE("a small sentencepiece-style tokenizer") {
  TempDir dir;
  auto tok = load_hf_tokenizer(dir.write("tokenizer.json", kTinyLlama2));
  CHECK(tok->vocab_size() == 13);
  CHECK(tok->bos_id() == 1);
  CHECK(tok->eos_id() == 2);
  // "▁ab▁abc": ▁ a b -> ▁ ab -> ▁ab; ▁ a b c -> ▁ ab c -> ▁ab c.
  CHECK(tok->encode("ab abc", true) == std::vector<int32_t>{1, 8, 8, 6});
  CHECK(tok->encode("ab abc", false) == std::vector<int32_t>{8, 8, 6});
  CHECK(tok->decode({1, 8, 8, 6}, true) == "ab abc");
  CHECK(tok->decode({1, 8, 8, 6}, false) == "<s> ab abc");
  // é is not in the vocabulary: its bytes C3 A9.
  CHECK(tok->encode("\xC3\xA9", false) == std::vector<int32_t>{3, 10, 11});
  CHECK(tok->decode({3, 10, 11}, false) == "\xC3\xA9");
  // d has neither a token nor byte tokens: <unk>, fused over the run.
  CHECK(tok->encode("ddd", false) == std::vector<int32_t>{3, 0});
  // Special tokens in the text, and the empty text.
  CHECK(tok->encode("a</s>b", false) == std::vector<int32_t>{3, 4, 2, 3, 5});
  CHECK(tok->encode("", true) == std::vector<int32_t>{1});
  CHECK(tok->encode("", false).empty());
  // Equal pairs merge leftmost first, in short words and in long ones (heap path).
  for (int n = 1; n <= 130; ++n) {
    std::vector<int32_t> want{3};
    for (int k = 0; k < n / 2; ++k) want.push_back(12);
    if (n % 2) want.push_back(4);
    CHECK(tok->encode(std::string(static_cast<size_t>(n), 'a'), false) == want);
  }
  // Invalid UTF-8 is repaired first; U+FFFD is not in the vocabulary, so it falls back to bytes
  // that have no tokens either: one <unk>.
  CHECK(tok->encode("\xFF", false) == tok->encode("\xEF\xBF\xBD", false));
}

TEST_CASE("encode is thread-safe") {
  TempDir dir;
  auto tok = load_hf_tokenizer(dir.write("tokenizer.json", kTinyLlama2));
  std::string text;
  for (int i = 0; i < 200; ++i) text += std::string(static_cast<size_t>(i % 7 + 1), 'a') + "bc ab\xC3\xA9 d ";
  const std::vector<int32_t> want = tok->encode(text, true);
  std::vector<int> bad(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < 50; ++k) bad[static_cast<size_t>(t)] += tok->encode(text, true) != want;
    });
  for (auto& th : threads) th.join();
  CHECK(bad == std::vector<int>(4, 0));
}

TEST_CASE("a directory holding tokenizer.json, with tokenizer_config.json naming bos and eos") {
  TempDir dir;
  dir.write("tokenizer.json", kTinyLlama2);
  dir.write("tokenizer_config.json", R"({"bos_token": "</s>", "eos_token": {"content": "<s>"}})");
  auto tok = load_hf_tokenizer(dir.path.string());
  CHECK(tok->bos_id() == 2);
  CHECK(tok->eos_id() == 1);
}

TEST_CASE("missing and malformed files are named") {
  TempDir dir;
  auto error_of = [](const std::string& path) -> std::string {
    try {
      load_hf_tokenizer(path);
    } catch (const fm::InputError& e) {
      return e.what();
    }
    return "(no error)";
  };
  std::string missing = (dir.path / "nope.json").string();
  CHECK(error_of(missing).find(missing + ": no such tokenizer file") == 0);
  CHECK(error_of(dir.path.string()).find(dir.path.string() + ": no tokenizer.json") == 0);
  std::string bad = dir.write("broken.json", "{\n  \"version\": \"1.0\",\n  \"model\": [1, 2\n}");
  CHECK(error_of(bad).find(bad + ":4:1: invalid JSON") == 0);
  dir.write("tokenizer.json", kTinyLlama2);
  std::string side = dir.write("tokenizer_config.json", "{oops");
  CHECK(error_of(dir.path.string()).find(side + ":1:2: invalid JSON") == 0);
}

TEST_CASE("unsupported tokenizer.json features are refused, naming the file and the key") {
  TempDir dir;
  const std::string file = (dir.path / "tokenizer.json").string();
  struct Case {
    std::string from, to, key;
  };
  const std::vector<Case> cases = {
      {R"("type": "BPE")", R"("type": "WordPiece")", "model.type"},
      {R"({"type": "Prepend", "prepend": "▁"})", R"({"type": "NFKC"})", "normalizer.normalizers[0].type"},
      {R"("pre_tokenizer": null)", R"("pre_tokenizer": {"type": "Whitespace"})", "pre_tokenizer.type"},
      {R"("pre_tokenizer": null)",
       R"("pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false}]})",
       "pre_tokenizer.pretokenizers[0].pattern.Regex"},
      {R"("pre_tokenizer": null)",
       R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"}, "behavior": "Removed", "invert": false})",
       "pre_tokenizer.behavior"},
      {R"("truncation": null)", R"("truncation": {"max_length": 8})", "truncation"},
      {R"("version": "1.0",)", R"("version": "1.0", "extra": 1,)", "extra"},
      {R"("fuse_unk": true)", R"("fuse_unk": true, "dropout2": 0.1)", "model.dropout2"},
      {R"("dropout": null)", R"("dropout": 0.1)", "model.dropout"},
      {R"("continuing_subword_prefix": null)", R"("continuing_subword_prefix": "##")", "model.continuing_subword_prefix"},
      {R"({"type": "Fuse"})", R"({"type": "WordPiece", "prefix": "##"})", "decoder.decoders[2].type"},
      {R"("pattern": {"String": " "}, "content": "▁")", R"("pattern": {"Regex": " "}, "content": "▁")",
       "normalizer.normalizers[1].pattern.Regex"},
      {R"({"type": "TemplateProcessing",)", R"({"type": "BertProcessing",)", "post_processor.type"},
      {R"("merges": ["a b",)", R"("merges": ["a z",)", "model.merges[0]"},
      {R"("merges": ["a b",)", R"("merges": ["a  b",)", "model.merges[0]"},
      {R"("unk_token": "<unk>")", R"("unk_token": "<what>")", "model.unk_token"},
      {R"({"id": 2, "content": "</s>")", R"({"id": 7, "content": "</s>")", "added_tokens[2].id"},
      {R"("special": true}])", R"("special": true}, {"id": 13, "content": "<x>", "special": true, "weird": 1}])",
       "added_tokens[3].weird"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.key);
    std::string message = load_error(dir, replace_once(kTinyLlama2, c.from, c.to));
    CHECK(message.find(file + ": " + c.key + ":") != std::string::npos);
  }
}

TEST_CASE("a Metaspace pre-tokenizer with the older add_prefix_space key") {
  TempDir dir;
  std::string json = replace_once(kTinyLlama2, R"("normalizer": {"type": "Sequence", "normalizers": [
    {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
  "pre_tokenizer": null,)",
                                  R"("normalizer": null,
  "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},)");
  auto tok = load_hf_tokenizer(dir.write("tokenizer.json", json));
  // "always" and split: "▁ab", "▁abc".
  CHECK(tok->encode("ab abc", false) == std::vector<int32_t>{8, 8, 6});
  std::string refused = replace_once(json, R"("add_prefix_space": true)", R"("add_prefix_space": false)");
  CHECK(load_error(dir, refused).find("pre_tokenizer.add_prefix_space") != std::string::npos);
}
