// Read-only memory maps of data files.
//
// Token files and shards are read through the page cache rather than loaded: opening a
// multi-gigabyte shard costs nothing until its pages are touched, and every process on a node
// shares the same pages. A missing or unreadable file is an InputError naming the path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace fm::data {

class MappedFile {
 public:
  MappedFile() = default;
  // `what` names the role of the file in messages ("token file", "shard index").
  static MappedFile open(const std::string& path, const std::string& what);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release();
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace fm::data
