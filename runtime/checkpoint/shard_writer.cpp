#include "runtime/checkpoint/shard_writer.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "runtime/base/error.h"
#include "runtime/checkpoint/pieces.h"
#include "runtime/checkpoint/xxhash64.h"

namespace fm::checkpoint {
namespace {

// Sequential writes through a buffer, hashing every byte on its way out. Large spans bypass the
// buffer (hashed, then written from the caller's memory).
class HashingWriter {
 public:
  HashingWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) { buf_.reserve(kBuffer); }

  void append(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    if (buf_.size() + n <= kBuffer) {
      buf_.insert(buf_.end(), p, p + n);
      return;
    }
    flush();
    // Hash just before writing each chunk, while it is still in cache.
    for (size_t at = 0; at < n; at += kChunk) {
      const size_t m = std::min(kChunk, n - at);
      hash_.update(p + at, m);
      write_all(p + at, m);
    }
    bytes_ += n;
  }

  void flush() {
    if (buf_.empty()) return;
    hash_.update(buf_.data(), buf_.size());
    write_all(buf_.data(), buf_.size());
    bytes_ += buf_.size();
    buf_.clear();
  }

  uint64_t digest() const { return hash_.digest(); }
  int64_t bytes() const { return int64_t(bytes_); }

 private:
  static constexpr size_t kBuffer = size_t{4} << 20;
  static constexpr size_t kChunk = size_t{8} << 20;

  void write_all(const unsigned char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        throw RuntimeFault("cannot write " + path_ + ": " + std::strerror(errno));
      }
      p += w;
      n -= size_t(w);
    }
  }

  int fd_;
  std::string path_;
  std::vector<unsigned char> buf_;
  Xxh64 hash_;
  size_t bytes_ = 0;
};

struct StoredTensor {
  std::string key;
  const float* data;
  int64_t numel;
};

}  // namespace

std::string shard_file_name(int stage, int dp_rank) {
  return fmt::format("shard-pp{:03}-dp{:04}.safetensors", stage, dp_rank);
}

ShardRecord write_shard(const std::string& dir, const ShardData& d) {
  FM_CHECK(d.layout && d.params, "a shard needs a layout and parameters");
  FM_CHECK((d.exp_avg == nullptr) == (d.exp_avg_sq == nullptr), "give both moments or neither");
  FM_CHECK(0 <= d.begin && d.begin <= d.end, "bad shard range");
  const model::ParamLayout& layout = *d.layout;

  ShardRecord rec;
  rec.file = shard_file_name(d.stage, d.dp_rank);
  rec.stage = d.stage;
  rec.dp_rank = d.dp_rank;
  rec.layer_begin = layout.layer_begin;
  rec.layer_end = layout.layer_end;
  rec.begin = std::min(d.begin, layout.total);
  rec.end = std::min(d.end, layout.total);
  rec.optimizer_state = d.exp_avg != nullptr;

  const std::vector<Piece> pieces = pieces_of_range(layout, rec.begin, rec.end);
  std::vector<StoredTensor> tensors;
  for (Kind kind : kAllKinds) {
    const float* src = kind == Kind::Params ? d.params : kind == Kind::ExpAvg ? d.exp_avg : d.exp_avg_sq;
    if (!src) continue;
    for (const Piece& p : pieces)
      tensors.push_back({piece_key(kind, p.name, p.begin, p.end), src + (p.flat - d.begin), p.size()});
  }

  rapidjson::StringBuffer hb;
  rapidjson::Writer<rapidjson::StringBuffer> w(hb);
  w.StartObject();
  w.Key("__metadata__");
  w.StartObject();
  auto meta = [&](const char* k, const std::string& v) {
    w.Key(k);
    w.String(v.c_str());
  };
  meta("format", "fmengine-checkpoint-shard");
  meta("version", std::to_string(kFormatVersion));
  meta("stage", std::to_string(rec.stage));
  meta("dp_rank", std::to_string(rec.dp_rank));
  meta("layers", fmt::format("{},{}", rec.layer_begin, rec.layer_end));
  meta("range", fmt::format("{},{}", rec.begin, rec.end));
  meta("optimizer_state", rec.optimizer_state ? "true" : "false");
  w.EndObject();
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    w.Key(t.key.c_str());
    w.StartObject();
    w.Key("dtype");
    w.String("F32");
    w.Key("shape");
    w.StartArray();
    w.Int64(t.numel);
    w.EndArray();
    w.Key("data_offsets");
    w.StartArray();
    w.Uint64(offset);
    offset += uint64_t(t.numel) * 4;
    w.Uint64(offset);
    w.EndArray();
    w.EndObject();
  }
  w.EndObject();
  std::string header(hb.GetString(), hb.GetSize());
  header.append((8 - header.size() % 8) % 8, ' ');  // 8-byte aligned data region

  const std::string path = (std::filesystem::path(dir) / rec.file).string();
  const std::string tmp = path + ".part";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw RuntimeFault("cannot create " + tmp + ": " + std::strerror(errno));
  try {
    HashingWriter out(fd, tmp);
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(uint64_t(header.size()) >> (8 * i));
    out.append(len, 8);
    out.append(header.data(), header.size());
    for (const auto& t : tensors) out.append(t.data, size_t(t.numel) * 4);
    out.flush();
    if (::fsync(fd) != 0) throw RuntimeFault("cannot fsync " + tmp + ": " + std::strerror(errno));
    rec.bytes = out.bytes();
    rec.checksum = out.digest();
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw RuntimeFault("cannot write " + tmp + ": " + why);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw RuntimeFault("cannot rename " + tmp + " to " + path + ": " + why);
  }
  return rec;
}

}  // namespace fm::checkpoint
