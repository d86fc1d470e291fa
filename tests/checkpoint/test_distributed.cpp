// The collective save and resume on a one-rank world, the ZeRO shard ranges, and the whole-model
// views (weights for --init_ckpt, consolidation, Hugging Face export).
#include <doctest/doctest.h>

#include <filesystem>

#include "model/io/hf_checkpoint.h"
#include "model/io/safetensors.h"
#include "runtime/base/error.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/export.h"
#include "tests/checkpoint/synthetic.h"
#include "zero/zero_plan.h"

using namespace fm::checkpoint;
using namespace fm::checkpoint::testing;
namespace fs = std::filesystem;

TEST_CASE("shard ranges: ZeRO partitions, or data-parallel rank 0 alone") {
  const int64_t n = 1001;
  for (int dp : {1, 2, 3, 8}) {
    const auto part = fm::zero::make_zero_partitioning(n, dp);
    int64_t covered = 0;
    for (int r = 0; r < dp; ++r) {
      const ShardRange z0 = shard_range(0, dp, r, n);
      CHECK(z0.writes == (r == 0));
      CHECK(z0.begin == 0);
      CHECK(z0.end == n);
      for (int stage : {1, 2, 3}) {
        const ShardRange z = shard_range(stage, dp, r, n);
        CHECK(z.writes);
        CHECK(z.begin == part.begin(r));
        CHECK(z.end == part.end(r));
      }
      covered = shard_range(1, dp, r, n).end;
    }
    CHECK(covered >= n);
  }
}

TEST_CASE("save_checkpoint and open_for_resume on one rank") {
  const auto c = make_model({.tied = true});
  TempDir out;
  auto world = fm::comm::make_single_communicator();
  const auto layout = fm::model::make_param_layout(c, 0, int(c.num_layers_total()));
  const int64_t n = layout.total;
  const size_t N = size_t(n);
  ShardBuffers b;
  for (int64_t step : {100, 200}) {
    b = synthetic_shard(layout, 0, n, step);
    SaveRequest req;
    req.output_dir = out.path;
    req.step = step;
    req.shard = {0, 0, &layout, 0, n, b.params.data(), b.exp_avg.data(), b.exp_avg_sq.data()};
    req.model = &c;
    req.topology = topology_of(c, {1, 1, 0});
    req.state = synthetic_state(step);
    req.state.tokenizer = "/some/tokenizer.json";
    const SaveResult r = save_checkpoint(*world, req);
    CHECK(r.path == checkpoints_root(out.path) + "/" + step_tag(step));
    CHECK(r.bytes > 12 * n);
  }
  ResumeRequest rq;
  rq.mode = fm::runtime::ResumeMode::Auto;
  rq.output_dir = out.path;
  rq.model = &c;
  rq.layout = &layout;
  rq.state_begin = 0;
  rq.state_end = n + 6;  // with padding
  const ResumeResult res = open_for_resume(*world, rq);
  REQUIRE(res.reader);
  CHECK(res.reader->state().global_step == 200);
  CHECK(res.reader->state().tokenizer == "/some/tokenizer.json");
  std::vector<float> gp(N), gm(N + 6, -1.0f), gv(N + 6, -1.0f);
  load_rank_state(*res.reader, layout, 0, n + 6, gp.data(), gm.data(), gv.data());
  CHECK(gp == b.params);
  CHECK(std::vector<float>(gm.begin(), gm.begin() + n) == b.exp_avg);
  CHECK(std::vector<float>(gv.begin(), gv.begin() + n) == b.exp_avg_sq);
  for (int i = 0; i < 6; ++i) CHECK(gm[size_t(n + i)] == 0.0f);
}

TEST_CASE("weights for --init_ckpt from a checkpoint of another layout") {
  const auto c = make_model({.tied = true});
  TempDir out;
  save_simulated(checkpoints_root(out.path), c, {2, 2, 1}, 9);
  CHECK_FALSE(model_config_difference(checkpoint_model_config(out.path), c, false));
  const auto layout =
      fm::model::make_param_layout(c, 3, int(c.num_layers_total()));  // the head, with a replica
  std::vector<float> got(size_t(layout.total)), want(size_t(layout.total));
  load_weights(out.path, c, layout, got.data());
  fill_synthetic(Kind::Params, layout, 0, layout.total, 9, want.data());
  CHECK(got == want);
  // Another rope_theta is fine for weights; other shapes are not.
  auto other = c;
  other.rope_theta = 500000;
  load_weights(out.path, other, layout, got.data());
  other.vocab_size = 64;
  try {
    load_weights(out.path, other, layout, got.data());
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where().find("manifest.json: model_config.vocab_size") != std::string::npos);
  }
}

TEST_CASE("consolidate: one safetensors file under our names") {
  const auto c = make_model();
  TempDir out;
  CheckpointReader r(save_simulated(out.path, c, {3, 2, 1}, 6).path);
  consolidate(r, out / "all.safetensors", true);
  fm::model::io::SafetensorsFile f(out / "all.safetensors");
  const auto full = full_layout(c);
  CHECK(f.tensors().size() == 3 * full.params.size());
  CHECK(f.metadata().at("global_step") == "6");
  for (const auto& p : full.params)
    for (Kind k : kAllKinds) {
      const std::string name = k == Kind::Params ? p.name : std::string(kind_name(k)) + "/" + p.name;
      const auto* t = f.find(name);
      REQUIRE(t != nullptr);
      CHECK(t->shape == (p.cols == 1 ? std::vector<int64_t>{p.rows} : std::vector<int64_t>{p.rows, p.cols}));
      std::vector<float> got(size_t(t->numel));
      f.read_f32(*t, got.data());
      for (int64_t i = 0; i < p.numel(); i += 7)
        REQUIRE(got[size_t(i)] == synthetic_value(k, p.name, i, p.cols, 6));
    }
}

TEST_CASE("export to Hugging Face reads back through the importer") {
  for (bool tied : {false, true}) {
    const auto c = make_model({.tied = tied});
    TempDir out;
    CheckpointReader r(save_simulated(out.path, c, {2, 2, 1}, 3).path);
    HfExport how;
    how.options.max_shard_bytes = 20000;  // several shards and an index
    const auto notes = export_hf(r, out / "hf", how);
    CHECK(notes.size() == 1);  // no tokenizer recorded
    CHECK(fs::exists(out / "hf/model.safetensors.index.json"));
    fm::model::io::HfCheckpoint hf(out / "hf");
    const auto full = full_layout(c);
    std::vector<float> got(size_t(full.total));
    hf.load(full, got.data());
    CHECK(got == read_full_params(r));
  }
}

TEST_CASE("sizes as Hugging Face spells them") {
  CHECK(parse_size("5GB", "x") == 5'000'000'000);
  CHECK(parse_size("500MB", "x") == 500'000'000);
  CHECK(parse_size("2GiB", "x") == 2LL << 30);
  CHECK(parse_size("1.5kb", "x") == 1500);
  CHECK(parse_size("12345", "x") == 12345);
  for (const char* bad : {"", "GB", "5XB", "-1", "0"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(parse_size(bad, "--max_shard_size"), fm::InputError);
  }
}
