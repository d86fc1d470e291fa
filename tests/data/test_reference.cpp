// Reference checks with independent peers (the Python venv of scripts/test.sh):
//  - a token file written by numpy as docs/data.md describes gives, through open_data and the
//    loader, exactly the batches numpy computes (dp = 1 and dp = 2);
//  - fmprep with the LLaMA 2 and LLaMA 3 tokenizers writes, for every document, the ids of
//    Hugging Face `tokenizers` plus eos, in a shard numpy reads from the documented layout.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "data/datasets.h"
#include "data/loader.h"
#include "tests/data/test_util.h"

using namespace fm::data;
using fm::data::testing::read_file;
using fm::data::testing::TempDir;
using fm::data::testing::write_file;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string python() {
  std::string py = env("FM_PYTHON");
  if (py.empty()) FAIL("FM_PYTHON is not set: run the tests with scripts/test.sh (it prepares the reference venv)");
  return py;
}

int run(const std::string& cmd) {
  int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const std::string kScript = std::string(FM_SOURCE_ROOT) + "/tests/data/reference_check.py";

}  // namespace

TEST_CASE("a numpy-written token file feeds exactly numpy's batches") {
  const std::string py = python();
  TempDir dir;
  REQUIRE(run(py + " " + kScript + " token-file " + dir.path()) == 0);
  DataOptions o;
  o.data_path = {dir / "ref.tokens"};
  o.split = "1,0,0";
  o.seq_len = 16;
  DataSources d = open_data(o);
  CHECK_FALSE(d.shuffle);
  const std::string expected = read_file(dir / "expected.bin");
  const size_t per_step = 2 * 6 * 16 * 4 + 8;
  REQUIRE(expected.size() == 5 * per_step);

  for (int dp : {1, 2}) {
    CAPTURE(dp);
    std::vector<std::unique_ptr<Loader>> ranks;
    for (int r = 0; r < dp; ++r)
      ranks.push_back(std::make_unique<Loader>(d.train, BatchLayout{1, 6 / dp, dp, r, 16}, 0, d.shuffle, 1, 256));
    for (int step = 0; step < 5; ++step) {
      std::vector<int32_t> in, tg;
      int64_t global = -1;
      for (auto& l : ranks) {
        for (const MicroBatch& mb : l->next_step()) {
          in.insert(in.end(), mb.inputs.begin(), mb.inputs.end());
          tg.insert(tg.end(), mb.targets.begin(), mb.targets.end());
        }
        global = l->step_global_targets();
      }
      const char* base = expected.data() + step * per_step;
      std::vector<int32_t> want_in(96), want_tg(96);
      int64_t want_global;
      std::memcpy(want_in.data(), base, 384);
      std::memcpy(want_tg.data(), base + 384, 384);
      std::memcpy(&want_global, base + 768, 8);
      CHECK(in == want_in);
      CHECK(tg == want_tg);
      CHECK(global == want_global);
    }
  }
}

TEST_CASE("fmprep with LLaMA 2 and LLaMA 3 tokenizers matches Hugging Face tokenizers") {
  const std::string py = python();
  const std::string shared = env("FM_SHARED_DIR");
  REQUIRE_FALSE(shared.empty());
  TempDir dir;
  // Shakespeare lines plus text that exercises unicode, digits, whitespace runs and escapes.
  std::ifstream in(shared + "/data/tinyshakespeare.txt");
  std::string line, jsonl;
  for (int i = 0; i < 1500 && std::getline(in, line); ++i) {
    std::string escaped;
    for (char c : line) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    jsonl += "{\"text\": \"" + escaped + "\"}\n";
  }
  jsonl += "{\"text\": \"caf\\u00e9 na\\u00efve \\u4e2d\\u6587 \\ud83d\\ude00 12345  tabs\\tand\\nnewlines   \"}\n";
  jsonl += "{\"text\": \" leading space and trailing \"}\n";
  write_file(dir / "in.jsonl", jsonl);
  for (const char* name : {"llama2", "llama3"}) {
    CAPTURE(name);
    const std::string tok = shared + "/data/tokenizers/" + name;
    const std::string prefix = dir / name;
    REQUIRE(run(std::string(FM_FMPREP_PATH) + " --quiet --threads 2 --tokenizer " + tok + " --output " + prefix + " " +
                (dir / "in.jsonl") + " > /dev/null") == 0);
    CHECK(run(py + " " + kScript + " shard " + prefix + " " + tok + " " + (dir / "in.jsonl")) == 0);
  }
}
