// Writer and reader: a checkpoint written under one (pipeline, data, ZeRO) layout reads back
// identically, optimizer state included, under any other.
#include <doctest/doctest.h>

#include <filesystem>

#include "model/io/safetensors.h"
#include "runtime/base/error.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/reader.h"
#include "tests/checkpoint/synthetic.h"

using namespace fm::checkpoint;
using namespace fm::checkpoint::testing;

namespace {

void check_layout(const CheckpointReader& r, const fm::model::LlamaConfig& c, const Layout& l, int64_t step) {
  for (int s = 0; s < l.pipe; ++s)
    for (int d = 0; d < l.dp; ++d) {
      CAPTURE(s);
      CAPTURE(d);
      CHECK(check_rank(r, c, l, s, d, step) == "");
    }
}

}  // namespace

TEST_CASE("2 stages x 2 partitions (ZeRO 1) read back under 1x4, 4x1 and other layouts") {
  for (bool tied : {false, true}) {
    CAPTURE(tied);
    TempDir dir;
    const auto c = make_model({.tied = tied});
    const CommitResult saved = save_simulated(dir.path, c, {2, 2, 1}, 7);
    CheckpointReader r(saved.path);
    CHECK(r.manifest().files.size() == 4);
    CHECK(r.has_optimizer_state());
    r.verify_all();
    for (Layout l : {Layout{1, 4, 1}, Layout{1, 4, 2}, Layout{4, 1, 0}, Layout{2, 2, 1}, Layout{1, 1, 0},
                     Layout{3, 2, 2}, Layout{6, 1, 0}, Layout{2, 3, 1}}) {
      CAPTURE(l.pipe);
      CAPTURE(l.dp);
      CAPTURE(l.zero);
      check_layout(r, c, l, 7);
    }
  }
}

TEST_CASE("any element range of any tensor assembles across shard files") {
  TempDir dir;
  const auto c = make_model({.tied = true});
  CheckpointReader r(save_simulated(dir.path, c, {3, 2, 2}, 3).path);
  const auto full = full_layout(c);
  for (const auto& p : full.params) {
    for (auto [b, e] : {std::pair<int64_t, int64_t>{0, p.numel()}, {p.numel() / 3, p.numel() - 1}, {1, 2}}) {
      std::vector<float> got(size_t(e - b));
      r.read(Kind::ExpAvg, p.name, b, e, got.data());
      for (int64_t i = b; i < e; ++i)
        REQUIRE(got[size_t(i - b)] == synthetic_value(Kind::ExpAvg, p.name, i, p.cols, 3));
    }
  }
  std::vector<float> x(4);
  CHECK_THROWS_AS(r.read(Kind::Params, "layers.99.qkv", 0, 4, x.data()), fm::InputError);
}

TEST_CASE("ZeRO stage 0: only data-parallel rank 0 of each stage writes") {
  TempDir dir;
  const auto c = make_model();
  CheckpointReader r(save_simulated(dir.path, c, {2, 3, 0}, 1).path);
  CHECK(r.manifest().files.size() == 2);
  for (const auto& f : r.manifest().files) CHECK(f.dp_rank == 0);
  check_layout(r, c, {1, 2, 1}, 1);
}

TEST_CASE("shard files are safetensors with our piece names and metadata") {
  TempDir dir;
  const auto c = make_model();
  CheckpointReader r(save_simulated(dir.path, c, {2, 2, 1}, 2).path);
  const auto& rec = r.manifest().files[3];
  fm::model::io::SafetensorsFile f(r.file_path(3));
  CHECK(f.metadata().at("format") == "fmengine-checkpoint-shard");
  CHECK(f.metadata().at("stage") == std::to_string(rec.stage));
  CHECK(f.metadata().at("dp_rank") == std::to_string(rec.dp_rank));
  int params = 0, moments = 0;
  for (const auto& t : f.tensors()) {
    Kind k;
    std::string name;
    int64_t b = 0, e = 0;
    REQUIRE(parse_piece_key(t.name, k, name, b, e));
    (k == Kind::Params ? params : moments) += int(t.numel);
  }
  CHECK(params == rec.end - rec.begin);
  CHECK(moments == 2 * params);
}

TEST_CASE("manifest round trip") {
  TempDir dir;
  const auto c = make_model({.tied = true});
  CheckpointReader r(save_simulated(dir.path, c, {2, 2, 1}, 5).path);
  const Manifest& m = r.manifest();
  CHECK(m.tag == "global_step5");
  CHECK(m.state == synthetic_state(5));
  CHECK(m.topology == topology_of(c, {2, 2, 1}));
  const Manifest again = parse_manifest(manifest_to_json(m), "again");
  CHECK(again.state == m.state);
  CHECK(again.topology == m.topology);
  CHECK(again.files == m.files);
  CHECK(again.model_config_json == m.model_config_json);
  CHECK_FALSE(model_config_difference(again.model, c, false).has_value());
  // config.json beside the manifest: the model config, for tools that expect one.
  CHECK_FALSE(model_config_difference(fm::model::load_llama_config(r.dir() + "/config.json"), c, false));
}

TEST_CASE("a weights-only checkpoint has no optimizer state to read") {
  TempDir dir;
  const auto c = make_model();
  CheckpointReader r(save_simulated(dir.path, c, {2, 1, 0}, 4, false).path);
  CHECK_FALSE(r.has_optimizer_state());
  check_layout(r, c, {1, 1, 0}, 4);
  std::vector<float> m(10);
  try {
    r.read(Kind::ExpAvg, "norm", 0, 10, m.data());
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == r.manifest().path);
    CHECK(e.problem().find("no optimizer state") != std::string::npos);
  }
}
