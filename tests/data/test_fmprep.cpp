// fmprep end to end (the real executable): output format, every bad-input case with its message
// and exit code, skip/error modes with the counts in the summary; and the preparation library:
// identical bytes for any thread count.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <filesystem>

#include "data/prep.h"
#include "data/shard.h"
#include "data/tokenizer/tokenizer.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::expect_input_error;
using fm::data::testing::read_file;
using fm::data::testing::TempDir;
using fm::data::testing::write_file;

namespace {

struct Result {
  int code = -1;
  std::string out, err;
};

Result fmprep(const TempDir& dir, const std::string& args) {
  const std::string out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = std::string(FM_FMPREP_PATH) + " --quiet " + args + " > " + out + " 2> " + err;
  int status = std::system(cmd.c_str());
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

bool has(const std::string& text, const std::string& part) {
  bool ok = text.find(part) != std::string::npos;
  if (!ok) MESSAGE("looked for: " << part << "\nin: " << text);
  return ok;
}

std::vector<std::vector<int32_t>> shard_documents(const std::string& prefix) {
  auto s = Shard::open(prefix);
  std::vector<std::vector<int32_t>> docs;
  for (int64_t d = 0; d < s->num_documents(); ++d) {
    std::vector<int32_t> doc(s->document_length(d));
    s->copy_tokens(s->document_start(d), static_cast<int64_t>(doc.size()), doc.data());
    docs.push_back(doc);
  }
  return docs;
}

std::vector<int32_t> bytes_doc(const std::string& text, bool bos = true) {
  std::vector<int32_t> ids;
  if (bos) ids.push_back(ByteTokenizer::kBos);
  for (unsigned char c : text) ids.push_back(c);
  ids.push_back(ByteTokenizer::kEos);
  return ids;
}

bool no_output(const TempDir& dir, const std::string& name) {
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    if (entry.path().filename().string().rfind(name, 0) == 0) return false;
  return true;
}

}  // namespace

TEST_CASE("fmprep: JSONL in, shard out, with a summary") {
  TempDir dir;
  write_file(dir / "in.jsonl", "{\"text\": \"hello\"}\n\n{\"text\": \"caf\\u00e9 \\n x\", \"id\": 2}\r\n{\"text\": \"\"}\n");
  Result r = fmprep(dir, "--output " + (dir / "out") + " " + (dir / "in.jsonl"));
  CHECK(r.code == 0);
  CHECK(has(r.out, "fmprep: documents: 2\n"));
  CHECK(has(r.out, "fmprep: tokens: 18\n"));  // (1 + 5 + 1) + (1 + 9 + 1)
  CHECK(has(r.out, "fmprep: tokens per document: 9.0\n"));
  CHECK(has(r.out, "fmprep: skipped lines: 0\n"));
  CHECK(has(r.out, "fmprep: empty documents left out: 1\n"));
  CHECK(has(r.out, "MB/s"));
  auto docs = shard_documents(dir / "out");
  REQUIRE(docs.size() == 2);
  CHECK(docs[0] == bytes_doc("hello"));
  CHECK(docs[1] == bytes_doc("caf\xc3\xa9 \n x"));
  CHECK(Shard::open(dir / "out")->info().token_bytes == 2);

  Result c = fmprep(dir, "--check " + (dir / "out"));
  CHECK(c.code == 0);
  CHECK(has(c.out, "documents: 2"));
}

TEST_CASE("fmprep: each bad line stops the run with exit code 2 and file:line") {
  TempDir dir;
  struct Case {
    std::string line, message;
  };
  const std::vector<Case> cases = {
      {"{\"text\": \"a\", }", "malformed JSON: Missing a name for object member. (column 15)"},
      {"[\"text\"]", "malformed JSON: expected an object, found an array"},
      {"{\"txt\": \"a\"}", "no key 'text' (the object has: txt)\n  hint: did you mean --text_key txt?"},
      {"{\"text\": [1, 2]}", "'text' is an array, expected a string"},
      {"{\"text\": 5}", "'text' is a number, expected a string"},
      {"{\"text\": \"ab\xff\"}", "invalid UTF-8 at column 13"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.line);
    const std::string in = dir / "bad.jsonl";
    write_file(in, "{\"text\": \"fine\"}\n{\"text\": \"also fine\"}\n" + c.line + "\n{\"text\": \"late\"}\n");
    Result r = fmprep(dir, "--output " + (dir / "out") + " " + in);
    CHECK(r.code == 2);
    CHECK(has(r.err, "error: " + in + ":3: " + c.message));
    CHECK(has(r.err, "--on_bad_line skip"));
    CHECK(no_output(dir, "out"));
  }
}

TEST_CASE("fmprep --on_bad_line skip counts each kind in the summary") {
  TempDir dir;
  const std::string in = dir / "mixed.jsonl";
  write_file(in,
             "{\"text\": \"one\"}\n"
             "{\"text\": \"x\",\n"
             "{\"body\": \"no text\"}\n"
             "{\"text\": null}\n"
             "{\"text\": \"\xc0\xaf\"}\n"
             "{\"text\": \"two\"}\n"
             "7\n");
  Result r = fmprep(dir, "--on_bad_line skip --output " + (dir / "out") + " " + in);
  CHECK(r.code == 0);
  CHECK(has(r.out, "fmprep: documents: 2\n"));
  CHECK(has(r.out, "fmprep: skipped lines: 5 (2 malformed JSON, 1 missing key 'text', 1 text not a string, 1 invalid "
                   "UTF-8)\n"));
  CHECK(has(r.err, in + ":2: skipped: malformed JSON"));
  CHECK(has(r.err, in + ":3: skipped: no key 'text'"));
  CHECK(has(r.err, in + ":4: skipped: 'text' is null"));
  CHECK(has(r.err, in + ":5: skipped: invalid UTF-8 at column 11"));
  CHECK(has(r.err, in + ":7: skipped: malformed JSON: expected an object, found a number"));
  auto docs = shard_documents(dir / "out");
  REQUIRE(docs.size() == 2);
  CHECK(docs[1] == bytes_doc("two"));
}

TEST_CASE("fmprep: empty inputs, missing files, bad flags, damaged shards") {
  TempDir dir;
  write_file(dir / "empty.jsonl", "");
  Result r = fmprep(dir, "--output " + (dir / "out") + " " + (dir / "empty.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: " + (dir / "empty.jsonl") + ": empty input file"));

  write_file(dir / "blank.jsonl", "\n  \n");
  r = fmprep(dir, "--output " + (dir / "out") + " " + (dir / "blank.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "no documents to write"));
  CHECK(no_output(dir, "out"));

  write_file(dir / "all_bad.jsonl", "{\"a\": 1}\n");
  r = fmprep(dir, "--on_bad_line skip --output " + (dir / "out") + " " + (dir / "all_bad.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "no documents to write (1 lines skipped"));

  r = fmprep(dir, "--output " + (dir / "out") + " " + (dir / "nope.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: " + (dir / "nope.jsonl") + ": cannot open input file"));

  r = fmprep(dir, "--thread 2 --output x y.jsonl");
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: --thread: unknown flag\n  hint: did you mean '--threads'?"));
  r = fmprep(dir, "--on_bad_line ignore --output x y.jsonl");
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: --on_bad_line: 'ignore' is not one of: error, skip"));
  r = fmprep(dir, "--threads zero --output x y.jsonl");
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: --threads: 'zero' is not a thread count"));
  r = fmprep(dir, (dir / "y.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: --output: no output prefix given"));
  r = fmprep(dir, "--output " + (dir / "no/such/dir/out") + " " + (dir / "all_bad.jsonl"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "cannot create shard"));

  // A shard whose index no longer matches its tokens.
  write_file(dir / "ok.jsonl", "{\"text\": \"abc\"}\n{\"text\": \"defg\"}\n");
  REQUIRE(fmprep(dir, "--output " + (dir / "s") + " " + (dir / "ok.jsonl")).code == 0);
  std::string bin = read_file(dir / "s.bin");
  write_file(dir / "s.bin", bin.substr(0, bin.size() - 4));
  r = fmprep(dir, "--check " + (dir / "s"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: " + (dir / "s.bin") + ":16: header says 11 tokens of 2 bytes, but the file holds 18 bytes"));
}

TEST_CASE("fmprep: plain text documents by file, paragraph or line") {
  TempDir dir;
  const std::string text = "first line\nsecond line\n\n\nthird para\r\n  \nlast one\n";
  write_file(dir / "a.txt", text);
  REQUIRE(fmprep(dir, "--output " + (dir / "f") + " " + (dir / "a.txt")).code == 0);
  auto f = shard_documents(dir / "f");
  REQUIRE(f.size() == 1);
  CHECK(f[0] == bytes_doc(text));

  REQUIRE(fmprep(dir, "--text_split paragraph --output " + (dir / "p") + " " + (dir / "a.txt")).code == 0);
  auto p = shard_documents(dir / "p");
  REQUIRE(p.size() == 3);
  CHECK(p[0] == bytes_doc("first line\nsecond line"));
  CHECK(p[1] == bytes_doc("third para"));
  CHECK(p[2] == bytes_doc("last one"));

  REQUIRE(fmprep(dir, "--text_split line --add_special_tokens false --output " + (dir / "l") + " " + (dir / "a.txt"))
              .code == 0);
  auto l = shard_documents(dir / "l");
  REQUIRE(l.size() == 4);
  CHECK(l[0] == bytes_doc("first line", false));
  CHECK(l[3] == bytes_doc("last one", false));

  write_file(dir / "b.txt", "good\nbad \xe2\x82\n");
  Result r = fmprep(dir, "--text_split line --output " + (dir / "b") + " " + (dir / "b.txt"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: " + (dir / "b.txt") + ":2: invalid UTF-8 at column 5"));
  r = fmprep(dir, "--output " + (dir / "b") + " " + (dir / "b.txt"));
  CHECK(r.code == 2);
  CHECK(has(r.err, "error: " + (dir / "b.txt") + ":2: invalid UTF-8 at column 5"));

  // --text_key, and several inputs in order.
  write_file(dir / "k.jsonl", "{\"content\": \"zz\"}\n");
  REQUIRE(fmprep(dir, "--text_key content --output " + (dir / "k") + " " + (dir / "k.jsonl") + " " + (dir / "a.txt"))
              .code == 0);
  auto k = shard_documents(dir / "k");
  REQUIRE(k.size() == 2);
  CHECK(k[0] == bytes_doc("zz"));
  CHECK(k[1] == bytes_doc(text));
}

TEST_CASE("preparation writes the same bytes whatever the thread count") {
  TempDir dir;
  std::string jsonl, text;
  for (int i = 0; i < 600; ++i) {
    if (i == 77 || i == 431) jsonl += "{\"text\": broken}\n";
    else jsonl += "{\"text\": \"document number " + std::to_string(i) + " " + std::string(i % 13, 'x') + "\"}\n";
    text += "para " + std::to_string(i) + (i % 3 ? "\n" : "\n\n");
  }
  write_file(dir / "in.jsonl", jsonl);
  write_file(dir / "in.txt", text);
  const ByteTokenizer tok;
  std::string ref_bin, ref_idx;
  for (int threads : {1, 2, 4}) {
    CAPTURE(threads);
    PrepOptions o;
    o.inputs = {dir / "in.jsonl", dir / "in.txt"};
    o.output_prefix = dir / ("t" + std::to_string(threads));
    o.threads = threads;
    o.chunk_bytes = 256;  // many chunks in flight
    o.progress = false;
    o.text_split = TextSplit::kParagraph;
    o.on_bad_line = OnBadLine::kError;
    auto e = expect_input_error([&] { prepare_shard(o, tok, 1); });
    CHECK(e.where() == (dir / "in.jsonl") + ":78");  // the first bad line, whatever ran first

    o.on_bad_line = OnBadLine::kSkip;
    o.max_reported_bad_lines = 0;
    PrepSummary s = prepare_shard(o, tok, 1);
    CHECK(s.documents == 598 + 201);  // 200 paragraphs end with a blank line, one ends the file
    CHECK(s.skipped[static_cast<int>(BadLine::kMalformedJson)] == 2);
    std::string bin = read_file(o.output_prefix + ".bin"), idx = read_file(o.output_prefix + ".idx");
    if (ref_bin.empty()) ref_bin = bin, ref_idx = idx;
    CHECK(bin == ref_bin);
    CHECK(idx == ref_idx);
  }
}
