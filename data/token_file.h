// Token files ("FMTOKENS"): a flat array of int32 token ids read in order, with an optional
// per-token target mask. Simple enough that a ten-line numpy script writes one and feeds a
// reference model exactly the batches the engine sees (docs/data.md gives the layout and script).
//
// Layout (little-endian):
//   offset  0  char[8]  magic "FMTOKENS"
//   offset  8  uint32   version = 1
//   offset 12  uint32   flags: bit 0 = a target mask follows the ids; other bits must be 0
//   offset 16  uint64   count: number of tokens
//   offset 24  int32    ids[count]           (each >= 0)
//   then       uint8    mask[count]          (only with flag bit 0; each 0 or 1)
//
// Samples are windows of seq_len+1 tokens overlapping by one token (as Megatron and llm.c do):
// window w covers tokens [w*T, w*T + T], so every token after the first is a target exactly once
// and a file of n tokens holds (n - 1) / T windows. mask[i] == 0 makes token i's label -100.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/mapped_file.h"
#include "data/sample_source.h"

namespace fm::data {

inline constexpr char kTokenFileMagic[9] = "FMTOKENS";
inline constexpr uint32_t kTokenFileVersion = 1;
inline constexpr uint32_t kTokenFileHasMask = 1;
inline constexpr int64_t kTokenFileHeaderBytes = 24;

class TokenFile {
 public:
  // Maps and validates the whole file (header, size, ids >= 0, mask values); every problem is an
  // InputError whose `where` is "path:byte_offset".
  static std::shared_ptr<const TokenFile> open(const std::string& path);
  const std::string& path() const { return file_.path(); }
  int64_t count() const { return count_; }
  const int32_t* ids() const { return ids_; }
  const uint8_t* mask() const { return mask_; }  // nullptr without a mask
  int64_t id_byte_offset(int64_t token) const { return kTokenFileHeaderBytes + 4 * token; }

 private:
  MappedFile file_;
  int64_t count_ = 0;
  const int32_t* ids_ = nullptr;
  const uint8_t* mask_ = nullptr;
};

// True if the file exists and starts with the FMTOKENS magic.
bool is_token_file(const std::string& path);

// Writes a token file (mask may be null). Failures are InputErrors naming the path.
void write_token_file(const std::string& path, const std::vector<int32_t>& ids,
                      const std::vector<uint8_t>* mask = nullptr);

// Number of windows of seq_len+1 tokens; an InputError if the file holds fewer than one.
int64_t count_token_windows(const TokenFile& file, int seq_len);

// Windows [first, first + count) of a token file, in file order.
class TokenFileSource final : public SampleSource {
 public:
  TokenFileSource(std::shared_ptr<const TokenFile> file, int seq_len, int64_t first_window,
                  int64_t num_windows);
  std::string describe() const override;
  int seq_len() const override { return seq_len_; }
  int64_t size() const override { return num_windows_; }
  void read(int64_t index, int32_t* tokens, uint8_t* target_mask) const override;
  int64_t num_targets(int64_t index) const override;
  std::string locate(int64_t index, int pos) const override;

 private:
  int64_t first_token(int64_t index) const;
  std::shared_ptr<const TokenFile> file_;
  int seq_len_;
  int64_t first_window_, num_windows_;
};

}  // namespace fm::data
