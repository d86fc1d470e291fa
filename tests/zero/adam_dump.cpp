// Runs our clipping + Adam/AdamW over a described layout, for the reference check against torch.
//
//   adam_dump DIR STEPS DP MAX_NORM ADAM_W_MODE BETA1 BETA2 EPS WEIGHT_DECAY LR0,LR1,...
// DIR holds layout.txt ("numel decay replica" per tensor, in buffer order), params.f32 (the
// initial flat buffer) and grads.f32 (STEPS flat gradient buffers). Each step: per-partition sums
// of squares (DP ZeRO partitions, summed as an all-reduce would), clip by the global norm, one
// Adam step per partition. Writes DIR/params_out.f32 and prints the global norm of each step.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "zero/adam.h"
#include "zero/clip.h"
#include "zero/zero_plan.h"

namespace {

std::vector<float> read_floats(const std::string& path, size_t n) {
  std::vector<float> v(n);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  if (!in) throw std::runtime_error("cannot read " + std::to_string(n) + " floats from " + path);
  return v;
}

fm::model::ParamLayout read_layout(const std::string& path) {
  std::ifstream in(path);
  fm::model::ParamLayout layout;
  int64_t numel;
  int decay, replica;
  while (in >> numel >> decay >> replica) {
    fm::model::ParamInfo p;
    p.name = "tensor";
    p.name += std::to_string(layout.params.size());
    p.rows = numel;
    p.offset = layout.total;
    p.decay = decay != 0;
    p.replica = replica != 0;
    layout.total += numel;
    layout.params.push_back(p);
  }
  return layout;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: adam_dump DIR STEPS DP MAX_NORM ADAM_W_MODE BETA1 BETA2 EPS WD LRS\n");
    return 2;
  }
  using namespace fm::zero;
  const std::string dir = argv[1];
  const int steps = std::stoi(argv[2]);
  const int dp = std::stoi(argv[3]);
  const double max_norm = std::stod(argv[4]);
  AdamConfig cfg;
  cfg.adam_w_mode = std::stoi(argv[5]) != 0;
  cfg.beta1 = std::stod(argv[6]);
  cfg.beta2 = std::stod(argv[7]);
  cfg.eps = std::stod(argv[8]);
  cfg.weight_decay = std::stod(argv[9]);
  std::vector<double> lrs;
  std::stringstream lr_text(argv[10]);
  for (std::string item; std::getline(lr_text, item, ',');) lrs.push_back(std::stod(item));
  if (static_cast<int>(lrs.size()) != steps) throw std::runtime_error("one lr per step");

  auto ops = fm::kernels::make_cpu_ops(1);
  const auto layout = read_layout(dir + "/layout.txt");
  const ZeroPartitioning part = make_zero_partitioning(layout.total, dp);
  std::vector<float> params = read_floats(dir + "/params.f32", layout.total);
  params.resize(part.padded_numel, 0.0f);
  const std::vector<float> all_grads = read_floats(dir + "/grads.f32", layout.total * steps);

  std::vector<std::unique_ptr<AdamOptimizer>> ranks;
  for (int r = 0; r < dp; ++r)
    ranks.push_back(
        std::make_unique<AdamOptimizer>(*ops, cfg, make_param_range(layout, part.begin(r), part.end(r))));

  for (int s = 0; s < steps; ++s) {
    std::vector<float> grads(all_grads.begin() + s * layout.total,
                             all_grads.begin() + (s + 1) * layout.total);
    grads.resize(part.padded_numel, 0.0f);
    double total = 0;
    for (int r = 0; r < dp; ++r)
      total += grad_sum_squares(*ops, ranks[r]->range(), fm::kernels::f32(grads.data() + part.begin(r)));
    const double norm = global_grad_norm(total);
    const double coef = clip_coefficient(norm, max_norm);
    if (coef < 1.0) ops->scale(fm::kernels::f32(grads.data()), static_cast<float>(coef), part.padded_numel);
    for (int r = 0; r < dp; ++r) {
      ranks[r]->set_lr(lrs[s]);
      ranks[r]->step(fm::kernels::f32(params.data() + part.begin(r)),
                     fm::kernels::f32(grads.data() + part.begin(r)));
    }
    std::printf("%.17g\n", norm);
  }
  std::ofstream out(dir + "/params_out.f32", std::ios::binary);
  out.write(reinterpret_cast<const char*>(params.data()),
            static_cast<std::streamsize>(layout.total * sizeof(float)));
  return out ? 0 : 1;
}
