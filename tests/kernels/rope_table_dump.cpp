// Writes fm::kernels::rope_table as raw float32 (T rows of D) to stdout, for the parity check
// against Hugging Face transformers (test_rope_table.py).
// usage: rope_table_dump T D THETA [FACTOR LOW_FREQ_FACTOR HIGH_FREQ_FACTOR ORIGINAL_MAX_POSITIONS]
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/ops.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 8) {
    std::fprintf(stderr, "usage: %s T D THETA [FACTOR LOW HIGH ORIGINAL_MAX_POSITIONS]\n", argv[0]);
    return 2;
  }
  const int T = std::atoi(argv[1]);
  const int D = std::atoi(argv[2]);
  const double theta = std::strtod(argv[3], nullptr);
  fm::kernels::RopeScaling scaling;
  if (argc == 8) {
    scaling.llama3 = true;
    scaling.factor = std::strtod(argv[4], nullptr);
    scaling.low_freq_factor = std::strtod(argv[5], nullptr);
    scaling.high_freq_factor = std::strtod(argv[6], nullptr);
    scaling.original_max_position_embeddings = std::atoi(argv[7]);
  }
  std::vector<float> table(static_cast<size_t>(T) * D);
  fm::kernels::rope_table(table.data(), T, D, theta, scaling);
  return std::fwrite(table.data(), sizeof(float), table.size(), stdout) == table.size() ? 0 : 1;
}
