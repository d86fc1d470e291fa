// Runs one of our kernels on inputs given by the reference-check script (test_reference.py) and
// writes the raw float32 result to stdout.
//   reference_tool rope T D THETA [FACTOR LOW_FREQ_FACTOR HIGH_FREQ_FACTOR ORIGINAL_MAX_POSITIONS]
//       the rope_table (T rows of D)
//   reference_tool adam FILE N STEPS LR BETA1 BETA2 EPS WEIGHT_DECAY ADAMW
//       FILE holds float32 p0 (N) then the gradients of each step (STEPS x N); writes p, m, v (3 x N)
//       after STEPS adam_update calls of the CPU backend (ADAMW 1: decoupled decay, 0: L2)
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/ops.h"

namespace {

bool write_floats(const std::vector<float>& v) {
  return std::fwrite(v.data(), sizeof(float), v.size(), stdout) == v.size();
}

int rope(int argc, char** argv) {
  if (argc != 5 && argc != 9) return 2;
  const int T = std::atoi(argv[2]);
  const int D = std::atoi(argv[3]);
  const double theta = std::strtod(argv[4], nullptr);
  fm::kernels::RopeScaling scaling;
  if (argc == 9) {
    scaling.llama3 = true;
    scaling.factor = std::strtod(argv[5], nullptr);
    scaling.low_freq_factor = std::strtod(argv[6], nullptr);
    scaling.high_freq_factor = std::strtod(argv[7], nullptr);
    scaling.original_max_position_embeddings = std::atoi(argv[8]);
  }
  std::vector<float> table(static_cast<size_t>(T) * D);
  fm::kernels::rope_table(table.data(), T, D, theta, scaling);
  return write_floats(table) ? 0 : 1;
}

int adam(int argc, char** argv) {
  if (argc != 11) return 2;
  const int64_t n = std::atoll(argv[3]);
  const int steps = std::atoi(argv[4]);
  std::vector<float> input(static_cast<size_t>(n) * (1 + steps));
  FILE* f = std::fopen(argv[2], "rb");
  if (!f) {
    std::perror(argv[2]);
    return 1;
  }
  const size_t got = std::fread(input.data(), sizeof(float), input.size(), f);
  std::fclose(f);
  if (got != input.size()) {
    std::fprintf(stderr, "%s: expected %zu floats, read %zu\n", argv[2], input.size(), got);
    return 1;
  }
  fm::kernels::AdamStep s;
  s.lr = std::strtod(argv[5], nullptr);
  s.beta1 = std::strtod(argv[6], nullptr);
  s.beta2 = std::strtod(argv[7], nullptr);
  s.eps = std::strtod(argv[8], nullptr);
  s.weight_decay = std::strtod(argv[9], nullptr);
  s.adam_w_mode = std::atoi(argv[10]) != 0;
  auto ops = fm::kernels::make_cpu_ops();
  std::vector<float> p(input.begin(), input.begin() + n), m(n, 0.0f), v(n, 0.0f);
  for (int step = 1; step <= steps; ++step) {
    s.step = step;
    const float* grad = input.data() + static_cast<size_t>(n) * step;
    ops->adam_update(fm::kernels::f32(p.data()), fm::kernels::f32(grad), fm::kernels::f32(m.data()),
                     fm::kernels::f32(v.data()), {}, n, s);
  }
  return write_floats(p) && write_floats(m) && write_floats(v) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int rc = 2;
  if (argc >= 2 && std::strcmp(argv[1], "rope") == 0) rc = rope(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "adam") == 0) rc = adam(argc, argv);
  if (rc == 2)
    std::fprintf(stderr,
                 "usage: %s rope T D THETA [FACTOR LOW HIGH ORIGINAL_MAX_POSITIONS]\n"
                 "       %s adam FILE N STEPS LR BETA1 BETA2 EPS WEIGHT_DECAY ADAMW\n",
                 argv[0], argv[0]);
  return rc;
}
