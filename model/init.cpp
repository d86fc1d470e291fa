#include "model/init.h"

#include <tbb/parallel_for.h>

#include <cmath>
#include <numbers>
#include <string>

namespace fm::model {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t name_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return splitmix64(h ^ splitmix64(seed));
}

// Uniform in (0, 1]: 53 random bits, never 0 so log() is finite.
double unit(uint64_t bits) { return (static_cast<double>(bits >> 11) + 1.0) * 0x1.0p-53; }

// Elements 2j and 2j+1 share one Box-Muller pair drawn from counter j of the tensor's stream.
void fill_normal(float* out, int64_t n, uint64_t key, double std) {
  const int64_t pairs = (n + 1) / 2;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, pairs, 1 << 14), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t j = r.begin(); j < r.end(); ++j) {
      const uint64_t base = key + 2 * static_cast<uint64_t>(j);
      const double radius = std::sqrt(-2.0 * std::log(unit(splitmix64(base))));
      const double angle = 2.0 * std::numbers::pi * unit(splitmix64(base + 1));
      out[2 * j] = static_cast<float>(std * radius * std::cos(angle));
      if (2 * j + 1 < n) out[2 * j + 1] = static_cast<float>(std * radius * std::sin(angle));
    }
  });
}

}  // namespace

void init_params(const LlamaConfig& c, const ParamLayout& layout, uint64_t seed, float* host_params) {
  for (const ParamInfo& p : layout.params) {
    float* dst = host_params + p.offset;
    if (p.cols == 1) {  // RMSNorm weights are the only vectors of the model
      for (int64_t i = 0; i < p.numel(); ++i) dst[i] = 1.0f;
    } else {
      fill_normal(dst, p.numel(), name_key(seed, p.name), c.initializer_range);
    }
  }
}

}  // namespace fm::model
