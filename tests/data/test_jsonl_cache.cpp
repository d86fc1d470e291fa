// Raw JSONL as --data_path: tokenized once into the cache, reused while the input is unchanged
// (even when only touched), rebuilt when it changes; opening never tokenizes.
#include <doctest/doctest.h>

#include <filesystem>

#include "data/datasets.h"
#include "data/jsonl_cache.h"
#include "data/shard.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::expect_input_error;
using fm::data::testing::TempDir;
using fm::data::testing::write_file;
namespace fs = std::filesystem;

namespace {

std::string corpus(int docs, const std::string& word) {
  std::string s;
  for (int i = 0; i < docs; ++i) s += "{\"text\": \"" + word + " " + std::to_string(i) + " and some more words\"}\n";
  return s;
}

}  // namespace

TEST_CASE("JSONL cache: build once, reuse, survive a touch, rebuild on change") {
  TempDir dir;
  const std::string in = dir / "corpus.jsonl";
  write_file(in, corpus(200, "alpha"));
  JsonlSpec spec{in, "", dir / "cache", "text", 1};

  DataOptions o;
  o.data_path = {in};
  o.cache_dir = dir / "cache";
  o.seq_len = 16;
  CHECK(find_jsonl_cache(spec).empty());
  CHECK(data_needs_preparation(o));
  auto e = expect_input_error([&] { open_data(o); });
  CHECK(e.where() == in);
  CHECK(std::string(e.what()).find("has not been tokenized") != std::string::npos);

  prepare_data(o);
  CHECK_FALSE(data_needs_preparation(o));
  const std::string prefix = find_jsonl_cache(spec);
  REQUIRE_FALSE(prefix.empty());
  CHECK(fs::path(prefix).parent_path() == fs::path(dir / "cache"));
  CHECK(fs::path(prefix).filename().string().rfind("corpus-", 0) == 0);
  CHECK(Shard::open(prefix)->num_documents() == 200);
  DataSources d = open_data(o);
  CHECK(d.train->size() > 0);

  const auto built = fs::last_write_time(prefix + ".bin");
  CHECK(prepare_jsonl_cache(spec) == prefix);
  CHECK(fs::last_write_time(prefix + ".bin") == built);

  // Touched, same bytes: reused without tokenizing again.
  fs::last_write_time(in, fs::last_write_time(in) + std::chrono::hours(1));
  CHECK(find_jsonl_cache(spec) == prefix);
  CHECK(prepare_jsonl_cache(spec) == prefix);
  CHECK(fs::last_write_time(prefix + ".bin") == built);

  // Same size, other bytes: stale, rebuilt.
  write_file(in, corpus(200, "gamma"));
  CHECK(find_jsonl_cache(spec).empty());
  CHECK(prepare_jsonl_cache(spec) == prefix);
  auto shard = Shard::open(prefix);
  std::vector<int32_t> first(shard->document_length(0));
  shard->copy_tokens(0, static_cast<int64_t>(first.size()), first.data());
  CHECK(first[1] == 'g');

  // Another text key is another entry.
  JsonlSpec other = spec;
  other.text_key = "body";
  CHECK(find_jsonl_cache(other).empty());
}

TEST_CASE("JSONL cache: bad lines and missing inputs are InputErrors") {
  TempDir dir;
  const std::string in = dir / "bad.jsonl";
  write_file(in, "{\"text\": \"ok\"}\n{\"text\": 3}\n");
  JsonlSpec spec{in, "", dir / "cache", "text", 1};
  auto e = expect_input_error([&] { prepare_jsonl_cache(spec); });
  CHECK(e.where() == in + ":2");
  CHECK(find_jsonl_cache(spec).empty());

  spec.path = dir / "missing.jsonl";
  e = expect_input_error([&] { prepare_jsonl_cache(spec); });
  CHECK(e.where() == dir / "missing.jsonl");

  spec.path = in;
  spec.tokenizer = dir / "no-tokenizer";
  e = expect_input_error([&] { find_jsonl_cache(spec); });
  CHECK(e.where() == "--tokenizer");
}
