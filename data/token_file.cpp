#include "data/token_file.h"

#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "runtime/base/error.h"

namespace fm::data {

namespace {

std::string at(const std::string& path, int64_t offset) { return fmt::format("{}:{}", path, offset); }

std::string printable_magic(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 8; ++i) s += (p[i] >= 32 && p[i] < 127) ? static_cast<char>(p[i]) : '?';
  return s;
}

}  // namespace

std::shared_ptr<const TokenFile> TokenFile::open(const std::string& path) {
  auto tf = std::make_shared<TokenFile>();
  tf->file_ = MappedFile::open(path, "token file");
  const uint8_t* p = tf->file_.data();
  const int64_t size = static_cast<int64_t>(tf->file_.size());
  const std::string hint = "token files are written as docs/data.md describes (magic FMTOKENS, version 1)";
  if (size < kTokenFileHeaderBytes)
    throw InputError(at(path, 0), fmt::format("file is {} bytes, shorter than the {}-byte token file header",
                                              size, kTokenFileHeaderBytes), hint);
  if (std::memcmp(p, kTokenFileMagic, 8) != 0)
    throw InputError(at(path, 0), fmt::format("bad magic '{}', expected 'FMTOKENS'", printable_magic(p)), hint);
  uint32_t version, flags;
  uint64_t count;
  std::memcpy(&version, p + 8, 4);
  std::memcpy(&flags, p + 12, 4);
  std::memcpy(&count, p + 16, 8);
  if (version != kTokenFileVersion)
    throw InputError(at(path, 8), fmt::format("unsupported token file version {}, expected {}", version,
                                              kTokenFileVersion), hint);
  if (flags & ~kTokenFileHasMask)
    throw InputError(at(path, 12), fmt::format("unknown flag bits 0x{:x} (only bit 0, the target mask, is defined)",
                                               flags & ~kTokenFileHasMask), hint);
  const bool has_mask = flags & kTokenFileHasMask;
  const unsigned __int128 expected =
      static_cast<unsigned __int128>(count) * (has_mask ? 5 : 4) + kTokenFileHeaderBytes;
  if (expected != static_cast<unsigned __int128>(size)) {
    throw InputError(at(path, 16),
                     fmt::format("header says {} tokens{}, which needs {} bytes, but the file has {} bytes", count,
                                 has_mask ? " with a target mask" : "",
                                 expected >= (static_cast<unsigned __int128>(1) << 64)
                                     ? std::string("over 2^64")
                                     : std::to_string(static_cast<uint64_t>(expected)),
                                 size),
                     "the file is truncated or its header is wrong");
  }
  tf->count_ = static_cast<int64_t>(count);
  tf->ids_ = reinterpret_cast<const int32_t*>(p + kTokenFileHeaderBytes);
  if (has_mask) tf->mask_ = p + kTokenFileHeaderBytes + 4 * count;
  for (int64_t i = 0; i < tf->count_; ++i) {
    if (tf->ids_[i] < 0)
      throw InputError(at(path, tf->id_byte_offset(i)),
                       fmt::format("token {} has id {}; token ids must be >= 0", i, tf->ids_[i]),
                       "ignored targets are expressed with the target mask, not with negative ids");
  }
  if (tf->mask_) {
    for (int64_t i = 0; i < tf->count_; ++i) {
      if (tf->mask_[i] > 1)
        throw InputError(at(path, kTokenFileHeaderBytes + 4 * tf->count_ + i),
                         fmt::format("target mask of token {} is {}; mask values must be 0 or 1", i,
                                     static_cast<int>(tf->mask_[i])));
    }
  }
  return tf;
}

bool is_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8];
  return in.read(magic, 8) && std::memcmp(magic, kTokenFileMagic, 8) == 0;
}

void write_token_file(const std::string& path, const std::vector<int32_t>& ids,
                      const std::vector<uint8_t>* mask) {
  if (mask && mask->size() != ids.size())
    throw InputError(path, "target mask and ids differ in length");
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw InputError(path, "cannot create token file");
  uint32_t version = kTokenFileVersion, flags = mask ? kTokenFileHasMask : 0;
  uint64_t count = ids.size();
  out.write(kTokenFileMagic, 8);
  out.write(reinterpret_cast<const char*>(&version), 4);
  out.write(reinterpret_cast<const char*>(&flags), 4);
  out.write(reinterpret_cast<const char*>(&count), 8);
  out.write(reinterpret_cast<const char*>(ids.data()), static_cast<std::streamsize>(4 * ids.size()));
  if (mask) out.write(reinterpret_cast<const char*>(mask->data()), static_cast<std::streamsize>(mask->size()));
  if (!out.flush()) throw InputError(path, "write failed (disk full?)");
}

int64_t count_token_windows(const TokenFile& file, int seq_len) {
  if (file.count() < seq_len + 1)
    throw InputError(fmt::format("{}:16", file.path()),
                     fmt::format("{} tokens, fewer than one sample of seq_len+1 = {} tokens", file.count(),
                                 seq_len + 1),
                     "use a longer token file or a shorter sequence length");
  return (file.count() - 1) / seq_len;
}

TokenFileSource::TokenFileSource(std::shared_ptr<const TokenFile> file, int seq_len, int64_t first_window,
                                 int64_t num_windows)
    : file_(std::move(file)), seq_len_(seq_len), first_window_(first_window), num_windows_(num_windows) {
  FM_CHECK(seq_len_ > 0 && first_window_ >= 0 && num_windows_ >= 0);
  FM_CHECK((first_window_ + num_windows_) * seq_len_ + 1 <= file_->count() || num_windows_ == 0,
           "window range beyond the token file");
}

std::string TokenFileSource::describe() const {
  return fmt::format("token file {} (windows {}..{} of {} tokens{})", file_->path(), first_window_,
                     first_window_ + num_windows_, seq_len_ + 1, file_->mask() ? ", with target mask" : "");
}

int64_t TokenFileSource::first_token(int64_t index) const {
  FM_CHECK(index >= 0 && num_windows_ > 0);
  return (first_window_ + index % num_windows_) * seq_len_;
}

void TokenFileSource::read(int64_t index, int32_t* tokens, uint8_t* target_mask) const {
  const int64_t first = first_token(index);
  std::memcpy(tokens, file_->ids() + first, sizeof(int32_t) * (seq_len_ + 1));
  if (file_->mask()) std::memcpy(target_mask, file_->mask() + first, seq_len_ + 1);
  else std::memset(target_mask, 1, seq_len_ + 1);
}

int64_t TokenFileSource::num_targets(int64_t index) const {
  if (!file_->mask()) return seq_len_;
  const uint8_t* m = file_->mask() + first_token(index);
  int64_t count = 0;
  for (int t = 1; t <= seq_len_; ++t) count += m[t];
  return count;
}

std::string TokenFileSource::locate(int64_t index, int pos) const {
  return fmt::format("{}:{}", file_->path(), file_->id_byte_offset(first_token(index) + pos));
}

}  // namespace fm::data
