#include "data/shard.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "runtime/base/error.h"

namespace fm::data {

namespace {

std::string at(const std::string& path, int64_t offset) { return fmt::format("{}:{}", path, offset); }

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

const char* kFormatHint = "shards are written by fmprep; rerun it to recreate the pair PREFIX.bin/PREFIX.idx";

}  // namespace

std::string shard_prefix(const std::string& path) {
  if (ends_with(path, ".bin") || ends_with(path, ".idx")) return path.substr(0, path.size() - 4);
  return path;
}

bool is_shard(const std::string& path) {
  std::ifstream in(shard_prefix(path) + ".bin", std::ios::binary);
  char magic[8];
  return in.read(magic, 8) && std::memcmp(magic, kShardMagic, 8) == 0;
}

// ---------------------------------------------------------------------------------------------
// Writing

ShardWriter::ShardWriter(const std::string& prefix, int64_t vocab_size, int32_t bos_id, int32_t eos_id,
                         uint64_t tokenizer_fingerprint)
    : prefix_(prefix) {
  info_.token_bytes = vocab_size <= 65536 ? 2 : 4;
  info_.vocab_size = vocab_size;
  info_.bos_id = bos_id;
  info_.eos_id = eos_id;
  info_.tokenizer_fingerprint = tokenizer_fingerprint;
  const std::string tag = fmt::format(".tmp.{}", static_cast<long>(::getpid()));
  bin_tmp_ = prefix + ".bin" + tag;
  idx_tmp_ = prefix + ".idx" + tag;
  bin_ = std::fopen(bin_tmp_.c_str(), "wb");
  if (!bin_)
    throw InputError(prefix + ".bin", fmt::format("cannot create shard: {}", std::strerror(errno)),
                     "check that the output directory exists and is writable");
  std::setvbuf(bin_, nullptr, _IOFBF, 1 << 22);
  uint8_t header[kShardHeaderBytes] = {};
  write_or_fail(bin_, header, sizeof header, bin_tmp_);
}

ShardWriter::~ShardWriter() {
  if (bin_) std::fclose(bin_);
  if (!finished_) {
    std::remove(bin_tmp_.c_str());
    std::remove(idx_tmp_.c_str());
  }
}

void ShardWriter::write_or_fail(std::FILE* f, const void* p, size_t n, const std::string& path) {
  if (n && std::fwrite(p, 1, n, f) != n)
    throw RuntimeFault(fmt::format("{}: write failed: {}", path, std::strerror(errno)));
}

void ShardWriter::add_document(const int32_t* ids, size_t n) {
  FM_CHECK(!finished_);
  buffer_.resize(n * info_.token_bytes);
  if (info_.token_bytes == 2) {
    auto* out = reinterpret_cast<uint16_t*>(buffer_.data());
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint16_t>(ids[i]);
  } else {
    std::memcpy(buffer_.data(), ids, n * 4);
  }
  write_or_fail(bin_, buffer_.data(), buffer_.size(), bin_tmp_);
  info_.num_tokens += static_cast<int64_t>(n);
  info_.num_documents += 1;
  offsets_.push_back(static_cast<uint64_t>(info_.num_tokens));
}

void ShardWriter::finish() {
  FM_CHECK(!finished_);
  uint8_t header[kShardHeaderBytes] = {};
  std::memcpy(header, kShardMagic, 8);
  store<uint32_t>(header + 8, kShardVersion);
  store<uint32_t>(header + 12, static_cast<uint32_t>(info_.token_bytes));
  store<uint64_t>(header + 16, static_cast<uint64_t>(info_.num_tokens));
  store<uint64_t>(header + 24, static_cast<uint64_t>(info_.num_documents));
  store<uint64_t>(header + 32, static_cast<uint64_t>(info_.vocab_size));
  store<int32_t>(header + 40, info_.bos_id);
  store<int32_t>(header + 44, info_.eos_id);
  store<uint64_t>(header + 48, info_.tokenizer_fingerprint);
  if (std::fseek(bin_, 0, SEEK_SET) != 0) throw RuntimeFault(bin_tmp_ + ": seek failed");
  write_or_fail(bin_, header, sizeof header, bin_tmp_);
  if (std::fclose(bin_) != 0) {
    bin_ = nullptr;
    throw RuntimeFault(fmt::format("{}: close failed: {}", bin_tmp_, std::strerror(errno)));
  }
  bin_ = nullptr;

  std::FILE* idx = std::fopen(idx_tmp_.c_str(), "wb");
  if (!idx) throw RuntimeFault(fmt::format("{}: cannot create: {}", idx_tmp_, std::strerror(errno)));
  uint8_t ih[kIndexHeaderBytes] = {};
  std::memcpy(ih, kIndexMagic, 8);
  store<uint32_t>(ih + 8, kShardVersion);
  store<uint64_t>(ih + 16, static_cast<uint64_t>(info_.num_documents));
  store<uint64_t>(ih + 24, static_cast<uint64_t>(info_.num_tokens));
  try {
    write_or_fail(idx, ih, sizeof ih, idx_tmp_);
    write_or_fail(idx, offsets_.data(), offsets_.size() * 8, idx_tmp_);
  } catch (...) {
    std::fclose(idx);
    throw;
  }
  if (std::fclose(idx) != 0) throw RuntimeFault(fmt::format("{}: close failed", idx_tmp_));
  // The index goes last: a reader that finds PREFIX.idx finds a complete PREFIX.bin beside it.
  std::error_code ec;
  std::filesystem::rename(bin_tmp_, prefix_ + ".bin", ec);
  if (!ec) std::filesystem::rename(idx_tmp_, prefix_ + ".idx", ec);
  if (ec) throw RuntimeFault(fmt::format("{}: cannot move the shard into place: {}", prefix_, ec.message()));
  finished_ = true;
}

// ---------------------------------------------------------------------------------------------
// Reading

std::shared_ptr<const Shard> Shard::open(const std::string& path) {
  auto s = std::make_shared<Shard>();
  s->prefix_ = shard_prefix(path);
  const std::string bin_path = s->prefix_ + ".bin", idx_path = s->prefix_ + ".idx";
  s->bin_ = MappedFile::open(bin_path, "token shard");
  s->idx_ = MappedFile::open(idx_path, "shard index");

  const uint8_t* b = s->bin_.data();
  const int64_t bsize = static_cast<int64_t>(s->bin_.size());
  if (bsize < kShardHeaderBytes)
    throw InputError(at(bin_path, 0), fmt::format("file is {} bytes, shorter than the {}-byte shard header", bsize,
                                                  kShardHeaderBytes), kFormatHint);
  if (std::memcmp(b, kShardMagic, 8) != 0)
    throw InputError(at(bin_path, 0), "bad magic, expected 'FMTOKBIN'", kFormatHint);
  if (load<uint32_t>(b + 8) != kShardVersion)
    throw InputError(at(bin_path, 8), fmt::format("unsupported shard version {}", load<uint32_t>(b + 8)), kFormatHint);
  ShardInfo& info = s->info_;
  uint32_t token_bytes = load<uint32_t>(b + 12);
  if (token_bytes != 2 && token_bytes != 4)
    throw InputError(at(bin_path, 12), fmt::format("token width {} bytes, expected 2 or 4", token_bytes), kFormatHint);
  info.token_bytes = static_cast<int>(token_bytes);
  uint64_t ntok = load<uint64_t>(b + 16), ndoc = load<uint64_t>(b + 24);
  const unsigned __int128 expected = static_cast<unsigned __int128>(ntok) * token_bytes + kShardHeaderBytes;
  if (expected != static_cast<unsigned __int128>(bsize))
    throw InputError(at(bin_path, 16),
                     fmt::format("header says {} tokens of {} bytes, but the file holds {} bytes of tokens", ntok,
                                 token_bytes, bsize - kShardHeaderBytes),
                     "the shard is truncated or was overwritten; rerun fmprep");
  info.num_tokens = static_cast<int64_t>(ntok);
  info.num_documents = static_cast<int64_t>(ndoc);
  info.vocab_size = static_cast<int64_t>(load<uint64_t>(b + 32));
  info.bos_id = load<int32_t>(b + 40);
  info.eos_id = load<int32_t>(b + 44);
  info.tokenizer_fingerprint = load<uint64_t>(b + 48);
  s->tokens_ = b + kShardHeaderBytes;

  const uint8_t* x = s->idx_.data();
  const int64_t xsize = static_cast<int64_t>(s->idx_.size());
  if (xsize < kIndexHeaderBytes)
    throw InputError(at(idx_path, 0), fmt::format("file is {} bytes, shorter than the {}-byte index header", xsize,
                                                  kIndexHeaderBytes), kFormatHint);
  if (std::memcmp(x, kIndexMagic, 8) != 0)
    throw InputError(at(idx_path, 0), "bad magic, expected 'FMTOKIDX'", kFormatHint);
  if (load<uint32_t>(x + 8) != kShardVersion)
    throw InputError(at(idx_path, 8), fmt::format("unsupported index version {}", load<uint32_t>(x + 8)), kFormatHint);
  const std::string pair_hint = fmt::format("{} and {} must come from the same fmprep run", bin_path, idx_path);
  if (load<uint64_t>(x + 16) != ndoc)
    throw InputError(at(idx_path, 16), fmt::format("index lists {} documents, but {} has {}", load<uint64_t>(x + 16),
                                                   bin_path, ndoc), pair_hint);
  if (load<uint64_t>(x + 24) != ntok)
    throw InputError(at(idx_path, 24), fmt::format("index covers {} tokens, but {} has {}", load<uint64_t>(x + 24),
                                                   bin_path, ntok), pair_hint);
  const unsigned __int128 xexpected = (static_cast<unsigned __int128>(ndoc) + 1) * 8 + kIndexHeaderBytes;
  if (xexpected != static_cast<unsigned __int128>(xsize))
    throw InputError(at(idx_path, 16),
                     fmt::format("header says {} documents ({} offsets), but the file holds {} bytes of offsets", ndoc,
                                 ndoc + 1, xsize - kIndexHeaderBytes),
                     "the index is truncated; rerun fmprep");
  s->offsets_ = reinterpret_cast<const uint64_t*>(x + kIndexHeaderBytes);
  if (s->offsets_[0] != 0)
    throw InputError(at(idx_path, kIndexHeaderBytes),
                     fmt::format("document 0 starts at token {}, expected 0", s->offsets_[0]), pair_hint);
  for (uint64_t d = 0; d < ndoc; ++d) {
    uint64_t begin = s->offsets_[d], end = s->offsets_[d + 1];
    int64_t where = kIndexHeaderBytes + 8 * static_cast<int64_t>(d + 1);
    if (end > ntok)
      throw InputError(at(idx_path, where),
                       fmt::format("document {} ends at token {}, beyond the {} tokens of {}", d, end, ntok, bin_path),
                       pair_hint);
    if (end < begin)
      throw InputError(at(idx_path, where),
                       fmt::format("document {} ends at token {}, before it starts (token {})", d, end, begin),
                       pair_hint);
  }
  if (s->offsets_[ndoc] != ntok)
    throw InputError(at(idx_path, kIndexHeaderBytes + 8 * static_cast<int64_t>(ndoc)),
                     fmt::format("the last document ends at token {}, but {} has {} tokens", s->offsets_[ndoc],
                                 bin_path, ntok),
                     pair_hint);
  return s;
}

std::string Shard::describe() const {
  return fmt::format("shard {} ({} documents, {} tokens)", prefix_, info_.num_documents, info_.num_tokens);
}

int64_t Shard::document_start(int64_t doc) const {
  FM_CHECK(doc >= 0 && doc <= info_.num_documents);
  return static_cast<int64_t>(offsets_[doc]);
}

void Shard::copy_tokens(int64_t first, int64_t count, int32_t* out) const {
  FM_CHECK(first >= 0 && count >= 0 && first + count <= info_.num_tokens);
  if (info_.token_bytes == 2) {
    const auto* p = reinterpret_cast<const uint16_t*>(tokens_) + first;
    for (int64_t i = 0; i < count; ++i) out[i] = p[i];
  } else {
    // uint32 ids above INT32_MAX become negative here and are rejected by the loader's range check.
    std::memcpy(out, tokens_ + 4 * first, 4 * count);
  }
}

std::string Shard::locate_token(int64_t token) const {
  return fmt::format("{}.bin:{}", prefix_, kShardHeaderBytes + token * info_.token_bytes);
}

}  // namespace fm::data
