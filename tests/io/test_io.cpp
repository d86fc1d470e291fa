// Model I/O: float conversions, safetensors write/read, Hugging Face export/import round trips.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "model/init.h"
#include "kernels/cpu/convert.h"
#include "model/io/hf_checkpoint.h"
#include "model/io/safetensors.h"
#include "runtime/base/error.h"
#include "tests/model/test_configs.h"

using namespace fm::model;
using namespace fm::model::io;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("fm_test_io_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() {
    static int n = 0;
    return n;
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

LlamaConfig small_config(bool tied) {
  LlamaConfig c = fm::model::testing::make_config(
      {.hidden = 16, .intermediate = 24, .layers = 3, .head_dim = 4, .vocab = 37, .tied = tied});
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

}  // namespace

TEST_CASE("safetensors: write then read, every dtype, metadata, empty and scalar tensors") {
  TempDir dir;
  std::vector<float> a(6 * 5), b(7), s = {3.5f};
  std::mt19937 rng(1);
  std::normal_distribution<float> nd;
  for (auto& x : a) x = nd(rng);
  for (auto& x : b) x = nd(rng);
  const std::string path = dir / "t.safetensors";
  write_safetensors(path,
                    {{"a", DType::F32, {6, 5}, a.data()},
                     {"b16", DType::BF16, {7}, b.data()},
                     {"h16", DType::F16, {7}, b.data()},
                     {"empty", DType::F32, {0, 4}, nullptr},
                     {"scalar", DType::F32, {}, s.data()}},
                    {{"format", "pt"}, {"note", "x"}});
  CHECK(!fs::exists(path + ".tmp." + std::to_string(::getpid())));
  SafetensorsFile f(path);
  REQUIRE(f.tensors().size() == 5);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.metadata().at("note") == "x");
  const TensorEntry* ta = f.find("a");
  REQUIRE(ta);
  CHECK(ta->shape == std::vector<int64_t>{6, 5});
  std::vector<float> back(30);
  f.read_f32(*ta, back.data());
  CHECK(back == a);
  std::vector<float> bb(7), hh(7);
  f.read_f32(*f.find("b16"), bb.data());
  f.read_f32(*f.find("h16"), hh.data());
  for (int i = 0; i < 7; ++i) {
    CHECK(bb[i] == fm::kernels::cpu::bf16_to_float(fm::kernels::cpu::float_to_bf16(b[i])));
    CHECK(hh[i] == fm::kernels::cpu::f16_to_float(fm::kernels::cpu::float_to_f16(b[i])));
  }
  CHECK(f.find("empty")->numel == 0);
  CHECK(f.find("scalar")->numel == 1);
  CHECK(f.find("missing") == nullptr);
  // the data region starts 8-byte aligned
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  CHECK(n % 8 == 0);
}

TEST_CASE("safetensors: a file that is not one is an input error naming it") {
  TempDir dir;
  const std::string path = dir / "junk.safetensors";
  std::ofstream(path) << "abc";
  try {
    SafetensorsFile f(path);
    FAIL("read a 3-byte file");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == path);
    CHECK(e.problem().find("shorter than the 8-byte header") != std::string::npos);
  }
  CHECK_THROWS_AS(SafetensorsFile(dir / "absent.safetensors"), fm::InputError);
}

TEST_CASE("hf checkpoint: export then import, single file and shards, tied and untied") {
  for (bool tied : {false, true}) {
    for (int64_t max_shard : {int64_t(5'000'000'000), int64_t(3000)}) {
      CAPTURE(tied);
      CAPTURE(max_shard);
      TempDir dir;
      const LlamaConfig c = small_config(tied);
      const ParamLayout full = make_param_layout(c, 0, 5);
      std::vector<float> params(full.total);
      init_params(c, full, 77, params.data());
      export_hf_checkpoint(dir.path.string(), c, params.data(), {"float32", max_shard});
      CHECK(fs::exists(dir / "config.json"));
      CHECK(fs::exists(dir / "generation_config.json"));
      const bool sharded = max_shard < 5000;
      CHECK(fs::exists(dir / "model.safetensors.index.json") == sharded);
      CHECK(fs::exists(dir / "model.safetensors") == !sharded);

      HfCheckpoint ckpt(dir.path.string());
      CHECK(ckpt.vocab_size() == 37);
      CHECK(ckpt.config().tie_word_embeddings == tied);
      std::vector<float> back(full.total);
      ckpt.load(full, back.data());
      CHECK(back == params);
      // a stage's layout (with the tied replica when tied) reads the same values
      const ParamLayout head = make_param_layout(c, 3, 5);
      std::vector<float> part(head.total);
      ckpt.load(head, part.data());
      for (const auto& p : head.params) {
        const ParamInfo* f = full.find(p.name);
        CHECK(std::equal(part.begin() + p.offset, part.begin() + p.offset + p.numel(), params.begin() + f->offset));
      }
    }
  }
}

TEST_CASE("hf checkpoint: bf16 export rounds to nearest even; a re-export replaces the old files") {
  TempDir dir;
  const LlamaConfig c = small_config(false);
  const ParamLayout full = make_param_layout(c, 0, 5);
  std::vector<float> params(full.total);
  init_params(c, full, 5, params.data());
  export_hf_checkpoint(dir.path.string(), c, params.data(), {"float32", 2000});
  CHECK(fs::exists(dir / "model.safetensors.index.json"));
  export_hf_checkpoint(dir.path.string(), c, params.data(), {"bfloat16", int64_t(1) << 40});
  CHECK(!fs::exists(dir / "model.safetensors.index.json"));
  for (const auto& e : fs::directory_iterator(dir.path)) CHECK(e.path().filename().string().rfind("model-", 0) != 0);
  HfCheckpoint ckpt(dir.path.string());
  CHECK(ckpt.config().torch_dtype == "bfloat16");
  std::vector<float> back(full.total);
  ckpt.load(full, back.data());
  for (int64_t i = 0; i < full.total; ++i) REQUIRE(back[i] == fm::kernels::cpu::bf16_to_float(fm::kernels::cpu::float_to_bf16(params[i])));
  CHECK_THROWS_AS(export_hf_checkpoint(dir.path.string(), c, params.data(), {"int8", 1000}), fm::InputError);
}
