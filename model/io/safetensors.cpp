#include "model/io/safetensors.h"

#include <fcntl.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <tbb/parallel_for.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kernels/cpu/convert.h"
#include "runtime/base/error.h"

namespace fm::model::io {
namespace {

// Larger headers are refused as corrupt (the reference implementation's limit is 100 MB too).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

std::string describe_shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "BF16") out = DType::BF16;
  else if (s == "F16") out = DType::F16;
  else return false;
  return true;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F16: return "F16";
    default: return "?";
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  auto fail = [&](const std::string& what, const std::string& hint = {}) -> void {
    throw InputError(path_, what, hint);
  };
  const std::string corrupt_hint = "the file is damaged or not a safetensors file";

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("not a regular file");
  }
  const uint64_t file_size = uint64_t(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail("file of " + std::to_string(file_size) + " bytes is shorter than the 8-byte header length", corrupt_hint);
  }
  map_size_ = file_size;
  map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(std::string("cannot map: ") + std::strerror(errno));
  }
  // From here on the destructor will not run if we throw: release the mapping by hand.
  try {
    const uint8_t* bytes = static_cast<const uint8_t*>(map_);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    if (n > file_size - 8)
      fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(file_size) +
               " bytes)",
           corrupt_hint + " (truncated?)");
    if (n > kMaxHeaderBytes) fail("header length " + std::to_string(n) + " is implausibly large", corrupt_hint);
    const char* header = reinterpret_cast<const char*>(bytes + 8);
    const uint8_t* data = bytes + 8 + n;
    const uint64_t data_size = file_size - 8 - n;

    rapidjson::Document doc;
    doc.Parse(header, n);
    if (doc.HasParseError())
      fail("header is not valid JSON at byte " + std::to_string(8 + doc.GetErrorOffset()) + ": " +
               rapidjson::GetParseError_En(doc.GetParseError()),
           corrupt_hint);
    if (!doc.IsObject()) fail("header is not a JSON object", corrupt_hint);

    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
      const std::string name(it->name.GetString(), it->name.GetStringLength());
      const auto& v = it->value;
      if (name == "__metadata__") {
        if (!v.IsObject()) fail("__metadata__ is not an object", corrupt_hint);
        for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
          if (!m->value.IsString()) fail("__metadata__." + std::string(m->name.GetString()) + " is not a string");
          metadata_[m->name.GetString()] = m->value.GetString();
        }
        continue;
      }
      auto bad = [&](const std::string& what) { fail("tensor '" + name + "': " + what, corrupt_hint); };
      if (!v.IsObject()) bad("entry is not an object");
      TensorEntry t;
      t.name = name;
      auto dt = v.FindMember("dtype");
      if (dt == v.MemberEnd() || !dt->value.IsString()) bad("no dtype");
      const std::string dtype = dt->value.GetString();
      if (!parse_dtype(dtype, t.dtype))
        fail("tensor '" + name + "': dtype " + dtype + " is not supported",
             "fmengine reads float tensors: F32, BF16 or F16");
      auto sh = v.FindMember("shape");
      if (sh == v.MemberEnd() || !sh->value.IsArray()) bad("no shape");
      t.numel = 1;
      for (const auto& d : sh->value.GetArray()) {
        if (!d.IsUint64()) bad("shape holds a value that is not a non-negative integer");
        const uint64_t dim = d.GetUint64();
        if (dim > (uint64_t(1) << 40) || (dim && uint64_t(t.numel) > (uint64_t(1) << 62) / dim))
          bad("shape is implausibly large");
        t.shape.push_back(int64_t(dim));
        t.numel *= int64_t(dim);
      }
      auto off = v.FindMember("data_offsets");
      if (off == v.MemberEnd() || !off->value.IsArray() || off->value.Size() != 2 || !off->value[0].IsUint64() ||
          !off->value[1].IsUint64())
        bad("data_offsets is not a pair of non-negative integers");
      const uint64_t begin = off->value[0].GetUint64(), end = off->value[1].GetUint64();
      if (end < begin) bad("data_offsets end before they begin");
      if (end > data_size)
        fail("tensor '" + name + "': data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                 ") lie outside the data region (" + std::to_string(data_size) + " bytes)",
             corrupt_hint + " (truncated?)");
      t.nbytes = int64_t(end - begin);
      if (uint64_t(t.nbytes) != uint64_t(t.numel) * kernels::dtype_size(t.dtype))
        bad("holds " + std::to_string(t.nbytes) + " bytes, but shape " + describe_shape(t.shape) + " of " + dtype +
            " needs " + std::to_string(uint64_t(t.numel) * kernels::dtype_size(t.dtype)));
      t.data = data + begin;
      if (index_.count(name)) bad("appears twice");
      index_[name] = tensors_.size();
      tensors_.push_back(std::move(t));
    }

    // The tensors must tile the data region: sorted by offset, each starts where the previous ended.
    std::vector<const TensorEntry*> order;
    for (const auto& t : tensors_) order.push_back(&t);
    std::stable_sort(order.begin(), order.end(), [](auto* a, auto* b) {
      return a->data < b->data || (a->data == b->data && a->nbytes < b->nbytes);
    });
    const uint8_t* expect = data;
    const TensorEntry* prev = nullptr;
    for (const TensorEntry* t : order) {
      if (t->data < expect)
        fail("tensor '" + t->name + "' overlaps tensor '" + prev->name + "'", corrupt_hint);
      if (t->data > expect)
        fail("tensor '" + t->name + "' starts at byte " + std::to_string(t->data - data) + " of the data region, " +
                 "leaving a gap after " + (prev ? "tensor '" + prev->name + "'" : std::string("the header")),
             corrupt_hint);
      expect = t->data + t->nbytes;
      prev = t;
    }
    if (expect != data + data_size)
      fail(std::to_string(data + data_size - expect) + " bytes after the last tensor belong to none", corrupt_hint);
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_size_(o.map_size_),
      tensors_(std::move(o.tensors_)),
      index_(std::move(o.index_)),
      metadata_(std::move(o.metadata_)) {
  o.map_ = nullptr;
  o.map_size_ = 0;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

const TensorEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::read_f32(const TensorEntry& t, float* dst) const {
  const uint8_t* src = t.data;
  const DType dtype = t.dtype;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, t.numel, 1 << 16), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i < r.end(); ++i) {
      if (dtype == DType::F32) {
        std::memcpy(dst + i, src + 4 * i, 4);
      } else {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        dst[i] = dtype == DType::BF16 ? kernels::cpu::bf16_to_float(h) : kernels::cpu::f16_to_float(h);
      }
    }
  });
}

// ---- writer ----------------------------------------------------------------------------------------

int64_t stored_bytes(const TensorToWrite& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n * int64_t(kernels::dtype_size(t.dtype));
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  if (!metadata.empty()) {
    w.Key("__metadata__");
    w.StartObject();
    for (const auto& [k, v] : metadata) {
      w.Key(k.c_str());
      w.String(v.c_str());
    }
    w.EndObject();
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    FM_CHECK(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16, "unsupported dtype");
    w.Key(t.name.c_str());
    w.StartObject();
    w.Key("dtype");
    w.String(safetensors_dtype_name(t.dtype));
    w.Key("shape");
    w.StartArray();
    for (int64_t d : t.shape) w.Uint64(uint64_t(d));
    w.EndArray();
    w.Key("data_offsets");
    w.StartArray();
    w.Uint64(offset);
    offset += uint64_t(stored_bytes(t));
    w.Uint64(offset);
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  std::string header(buf.GetString(), buf.GetSize());
  header.append((8 - header.size() % 8) % 8, ' ');  // keeps the data region 8-byte aligned

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw RuntimeFault("cannot write " + tmp + ": " + std::strerror(errno));
  bool ok = true;
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  ok = ok && std::fwrite(len, 1, 8, f) == 8;
  ok = ok && std::fwrite(header.data(), 1, header.size(), f) == header.size();
  std::vector<uint16_t> half;
  for (const auto& t : tensors) {
    const int64_t n = stored_bytes(t) / int64_t(kernels::dtype_size(t.dtype));
    if (t.dtype == DType::F32) {
      ok = ok && std::fwrite(t.data, 4, size_t(n), f) == size_t(n);
      continue;
    }
    constexpr int64_t kChunk = 1 << 20;  // convert in pieces: a 16-bit copy of a whole table is large
    half.resize(size_t(std::min(n, kChunk)));
    for (int64_t at = 0; at < n && ok; at += kChunk) {
      const int64_t m = std::min(kChunk, n - at);
      for (int64_t i = 0; i < m; ++i)
        half[i] = t.dtype == DType::BF16 ? kernels::cpu::float_to_bf16(t.data[at + i])
                                          : kernels::cpu::float_to_f16(t.data[at + i]);
      ok = std::fwrite(half.data(), 2, size_t(m), f) == size_t(m);
    }
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = (::fsync(::fileno(f)) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw RuntimeFault("cannot write " + tmp + ": " + why);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw RuntimeFault("cannot rename " + tmp + " to " + path + ": " + ec.message());
  }
}

}  // namespace fm::model::io
