// Backend-independent pieces of the op interface: dtype facts and the RoPE table.
//
// rope_table reproduces the float32 arithmetic of Hugging Face's LlamaRotaryEmbedding step by step
// (default and "llama3" rope types), so the table matches the reference to within one ulp. Each
// float32 operation of the reference is one rounded float operation here; this file is compiled
// with -ffp-contract=off so that no multiply-add is fused behind our back.
#include "kernels/ops.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "runtime/base/error.h"

namespace fm::kernels {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F16: return 2;
    case DType::I32: return 4;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F16: return "f16";
    case DType::I32: return "i32";
  }
  return "?";
}

namespace {

// float32 x**y, correctly rounded (the reference's vectorised pow is within one ulp of this).
float pow_f32(float x, float y) { return static_cast<float>(std::pow(double{x}, double{y})); }
float cos_f32(float x) { return static_cast<float>(std::cos(double{x})); }
float sin_f32(float x) { return static_cast<float>(std::sin(double{x})); }

// inv_freq[i] = 1 / theta^(2i/D): the exponent is a float32 quotient, and `1.0 / t` in the reference
// is a float32 reciprocal.
std::vector<float> default_inv_freq(int D, double theta) {
  std::vector<float> inv(D / 2);
  const float base = static_cast<float>(theta);
  const float dim = static_cast<float>(D);
  for (int i = 0; i < D / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / dim;
    inv[i] = 1.0f / pow_f32(base, exponent);
  }
  return inv;
}

// Llama 3.1 frequency rescaling: long wavelengths are divided by `factor`, short ones kept, the band
// in between interpolated. Python scalars enter each float32 op rounded to float, as in the reference.
void apply_llama3_scaling(std::vector<float>& inv, const RopeScaling& s) {
  const double old_context = s.original_max_position_embeddings;
  const float low_wavelen = static_cast<float>(old_context / s.low_freq_factor);
  const float high_wavelen = static_cast<float>(old_context / s.high_freq_factor);
  const float two_pi = static_cast<float>(2.0 * std::numbers::pi);
  const float factor = static_cast<float>(s.factor);
  const float old_context_f = static_cast<float>(old_context);
  const float low_ff = static_cast<float>(s.low_freq_factor);
  const float band = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  for (float& f : inv) {
    const float wavelen = (1.0f / f) * two_pi;
    const float scaled = wavelen > low_wavelen ? f / factor : f;
    const float smooth = ((1.0f / wavelen) * old_context_f - low_ff) / band;
    const float a = ((1.0f - smooth) * scaled) / factor;
    const float b = smooth * scaled;
    const float smoothed = a + b;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    f = medium ? smoothed : scaled;
  }
}

}  // namespace

void rope_table(float* cos_sin, int T, int D, double theta, const RopeScaling& scaling) {
  FM_CHECK(D > 0 && D % 2 == 0, "rope_table: the head dimension must be even and positive");
  FM_CHECK(T >= 0, "rope_table: negative length");
  std::vector<float> inv = default_inv_freq(D, theta);
  if (scaling.llama3) apply_llama3_scaling(inv, scaling);
  const int half = D / 2;
  for (int t = 0; t < T; ++t) {
    float* row = cos_sin + static_cast<size_t>(t) * D;
    const float pos = static_cast<float>(t);
    for (int i = 0; i < half; ++i) {
      const float angle = pos * inv[i];
      row[i] = cos_f32(angle);
      row[half + i] = sin_f32(angle);
    }
  }
}

}  // namespace fm::kernels
