// What fmtrain uses when a run names nothing: the tiny model (configs/models/tiny.json, embedded
// so a fresh build trains without any file) and the synthetic corpus (data/synthetic.h).
// tests/e2e checks that the embedded text and configs/models/tiny.json describe the same model.
#pragma once

#include <string_view>

namespace fm::runtime {

std::string_view embedded_tiny_model_config_json();
inline constexpr const char* kEmbeddedTinyModelSource = "<embedded configs/models/tiny.json>";

}  // namespace fm::runtime
