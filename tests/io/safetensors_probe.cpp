// Test probe for the safetensors reference check (not a user-facing program).
//
//   safetensors_probe convert IN OUT DTYPE   reads IN (validating it), writes every tensor as DTYPE
//                                            (F32, BF16 or F16) to OUT with IN's metadata
// Bad input: the InputError on stderr and exit code 2.
#include <cstdio>
#include <string>
#include <vector>

#include "model/io/safetensors.h"
#include "runtime/base/error.h"

using namespace fm::model::io;

int main(int argc, char** argv) {
  if (argc != 5 || std::string(argv[1]) != "convert") {
    std::fprintf(stderr, "usage: safetensors_probe convert IN OUT F32|BF16|F16\n");
    return 64;
  }
  const std::string d = argv[4];
  const DType dtype = d == "BF16" ? DType::BF16 : d == "F16" ? DType::F16 : DType::F32;
  try {
    SafetensorsFile in(argv[2]);
    std::vector<std::vector<float>> data;
    std::vector<TensorToWrite> out;
    data.reserve(in.tensors().size());
    for (const auto& t : in.tensors()) {
      data.emplace_back(t.numel);
      in.read_f32(t, data.back().data());
      out.push_back({t.name, dtype, t.shape, data.back().data()});
    }
    std::vector<std::pair<std::string, std::string>> meta(in.metadata().begin(), in.metadata().end());
    write_safetensors(argv[3], out, meta);
    std::printf("ok %zu tensors\n", out.size());
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  }
  return 0;
}
