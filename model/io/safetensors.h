// safetensors files: a memory-mapped, validating reader and an atomic writer.
//
// Format: 8-byte little-endian header length n, n bytes of JSON header, then the data region. The
// header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
// the data region) and may hold "__metadata__" (string -> string).
//
// The reader checks, before any tensor is used: the header length lies within the file; the header
// is a JSON object of well-formed entries; every dtype is F32, BF16 or F16; every tensor's byte size
// equals numel * dtype size; the tensors tile the data region exactly (in bounds, no overlap, no
// gap, nothing after the last). Every problem is an InputError naming the file (and the tensor).
// Tensors are read as fp32 (converted from BF16/F16).
//
// The writer writes F32/BF16/F16 from fp32 sources to `path.tmp.<pid>` and renames it into place,
// so a reader never sees a half-written file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/ops.h"

namespace fm::model::io {

using kernels::DType;

// "F32", "BF16", "F16": the safetensors spelling of a float dtype.
const char* safetensors_dtype_name(DType t);

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  const uint8_t* data = nullptr;  // into the mapping
  int64_t nbytes = 0;
};

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);  // maps and validates; InputError on any problem
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorEntry>& tensors() const { return tensors_; }  // in header order
  const TensorEntry* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Converts the whole tensor to fp32 into dst (t.numel floats).
  void read_f32(const TensorEntry& t, float* dst) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorEntry> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// One tensor to write: `data` holds numel(shape) fp32 values, stored as `dtype`.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// Bytes the tensor takes in the file.
int64_t stored_bytes(const TensorToWrite& t);

// Writes the file atomically (temporary name, then rename). I/O failures are RuntimeFaults.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {{"format", "pt"}});

}  // namespace fm::model::io
