// Test probe for the Hugging Face parity and I/O checks (not a user-facing program).
//
//   hf_probe run MODEL_DIR BATCH_JSON OUT.safetensors [CUTS]
//       Imports MODEL_DIR into stages cut at CUTS (e.g. "0,2,5"; default: one stage), runs a
//       training forward/backward with grad_scale = 1/(non-ignored targets) and an eval forward,
//       and writes "logits" (N,V), "loss" (the mean, [1]) and every parameter gradient under its
//       HF name (tied replicas summed into the embedding). BATCH_JSON: {"B", "T", "tokens", "targets"}.
//   hf_probe export MODEL_DIR OUT_DIR DTYPE MAX_SHARD_BYTES
//       Imports the whole model and exports it again.
//   hf_probe load MODEL_DIR
//       Opens and loads the checkpoint; prints its vocab size.
// Bad input: the InputError on stderr and exit code 2.
#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "model/io/hf_checkpoint.h"
#include "model/stage.h"
#include "runtime/base/error.h"

using namespace fm::model;

namespace {

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
};

Batch read_batch(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  rapidjson::Document d;
  d.Parse(ss.str().c_str());
  FM_CHECK(!d.HasParseError() && d.IsObject(), "bad batch file " + path);
  Batch b;
  b.B = d["B"].GetInt();
  b.T = d["T"].GetInt();
  for (const auto& v : d["tokens"].GetArray()) b.tokens.push_back(v.GetInt());
  for (const auto& v : d["targets"].GetArray()) b.targets.push_back(v.GetInt());
  FM_CHECK(int(b.tokens.size()) == b.B * b.T && b.targets.size() == b.tokens.size(), "batch sizes");
  return b;
}

std::vector<int> parse_cuts(const std::string& s, int layers_total) {
  std::vector<int> cuts;
  if (s.empty()) return {0, layers_total};
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) cuts.push_back(std::stoi(part));
  return cuts;
}

int run(const std::string& dir, const std::string& batch_path, const std::string& out, const std::string& cuts_text) {
  io::HfCheckpoint ckpt(dir);
  const LlamaConfig& c = ckpt.config();
  const int total_layers = int(c.num_hidden_layers) + 2;
  const Batch b = read_batch(batch_path);
  auto ops = fm::kernels::make_cpu_ops(1);
  const std::vector<int> cuts = parse_cuts(cuts_text, total_layers);

  std::vector<std::unique_ptr<Stage>> stages;
  for (size_t s = 0; s + 1 < cuts.size(); ++s) {
    stages.push_back(std::make_unique<Stage>(c, cuts[s], cuts[s + 1], *ops, StageShape{b.B, b.T, 1}));
    std::vector<float> host(stages.back()->num_params());
    ckpt.load(stages.back()->layout(), host.data());
    stages.back()->upload_params(host.data());
    stages.back()->zero_grads();
  }
  int64_t counted = 0;
  for (int32_t t : b.targets) counted += t != -100;
  const float scale = 1.0f / float(std::max<int64_t>(counted, 1));

  auto forward = [&](bool training) {
    const float* h = nullptr;
    double loss = 0;
    for (auto& st : stages) {
      loss = st->forward(0, b.tokens.data(), h, b.targets.data(), scale, training);
      if (!st->is_last()) h = st->output(0);
    }
    return loss;
  };
  const double loss_sum = forward(true);
  const float* g = nullptr;
  for (auto it = stages.rbegin(); it != stages.rend(); ++it) {
    (*it)->backward(0, g);
    if (!(*it)->is_first()) g = (*it)->input_grad(0);
  }
  forward(false);

  // Gradients into the whole model's layout, replicas added to their owner.
  const ParamLayout full = make_param_layout(c, 0, total_layers);
  std::vector<float> grads(full.total, 0.0f);
  for (auto& st : stages) {
    std::vector<float> sg(st->num_params());
    st->download_grads(sg.data());
    for (const auto& p : st->layout().params) {
      const ParamInfo* f = full.find(p.name);
      FM_CHECK(f, p.name);
      for (int64_t i = 0; i < p.numel(); ++i) grads[f->offset + i] += sg[p.offset + i];
    }
  }
  std::vector<io::TensorToWrite> tensors = io::hf_tensors(full, grads.data(), io::DType::F32);
  const int64_t N = int64_t(b.B) * b.T;
  std::vector<float> logits(N * c.vocab_size);
  ops->copy(fm::kernels::f32(logits.data()), fm::kernels::f32(stages.back()->logits(0)), int64_t(logits.size()));
  const float loss = float(loss_sum * double(scale));
  tensors.push_back({"logits", io::DType::F32, {N, c.vocab_size}, logits.data()});
  tensors.push_back({"loss", io::DType::F32, {1}, &loss});
  io::write_safetensors(out, tensors);
  return 0;
}

int export_model(const std::string& dir, const std::string& out, const std::string& dtype, int64_t max_shard) {
  io::HfCheckpoint ckpt(dir);
  const LlamaConfig& c = ckpt.config();
  const ParamLayout full = make_param_layout(c, 0, int(c.num_hidden_layers) + 2);
  std::vector<float> params(full.total);
  ckpt.load(full, params.data());
  io::HfExportOptions opt;
  opt.dtype = dtype;
  opt.max_shard_bytes = max_shard;
  io::export_hf_checkpoint(out, c, params.data(), opt);
  return 0;
}

int load(const std::string& dir) {
  io::HfCheckpoint ckpt(dir);
  const ParamLayout full = make_param_layout(ckpt.config(), 0, int(ckpt.config().num_hidden_layers) + 2);
  std::vector<float> params(full.total);
  ckpt.load(full, params.data());
  std::printf("ok vocab_size=%lld\n", static_cast<long long>(ckpt.vocab_size()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() >= 4 && a[0] == "run") return run(a[1], a[2], a[3], a.size() > 4 ? a[4] : "");
    if (a.size() == 5 && a[0] == "export") return export_model(a[1], a[2], a[3], std::stoll(a[4]));
    if (a.size() == 2 && a[0] == "load") return load(a[1]);
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  }
  std::fprintf(stderr, "usage: hf_probe run DIR BATCH OUT [CUTS] | export DIR OUT DTYPE MAX_SHARD | load DIR\n");
  return 64;
}
