// The BPE model of Hugging Face tokenizers, giving the same ids for every pre-tokenized word.
//
// A word is split into its initial symbols (characters, or bytes for byte-level vocabularies;
// unknown characters become <0xNN> byte tokens with byte_fallback, else the unk token, fused
// or not), then the pair of adjacent symbols with the lowest merge rank is merged, leftmost first,
// until no pair has a merge. With ignore_merges a word that is itself in the vocabulary is one
// token. Short words use repeated scans of a small array, long ones a heap over a linked list
// (both give the order of `tokenizers`' BinaryHeap: rank, then position).
//
// Thread safety: the model is immutable; each thread passes its own Scratch (word cache and
// buffers).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/tokenizer/flat_map.h"

namespace fm::data::hf {

struct BpeOptions {
  bool byte_level = false;  // words arrive as raw bytes; vocabulary strings use the byte-level alphabet
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  int32_t unk_id = -1;  // -1: unknown characters are dropped, as `tokenizers` does without unk_token
};

// Cache of encoded words, owned by one thread. Cleared when full. 16-byte slots: the low bits of
// the hash pick the slot, the high half is kept as a tag.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 255;  // longer words are not cached
  WordCache();
  const int32_t* find(std::string_view word, uint64_t hash, uint32_t& count) const;
  void insert(std::string_view word, uint64_t hash, const int32_t* ids, uint32_t count);
  void prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

 private:
  struct Slot {
    uint32_t tag, key_off, val_off;
    uint16_t key_len, val_len;  // key_len 0: empty
  };
  void clear();
  void grow();
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> values_;
  size_t mask_ = 0, entries_ = 0;
};

class BpeModel {
 public:
  // Words waiting to be encoded: their table slots are prefetched while earlier words are encoded.
  static constexpr size_t kQueueDepth = 8;
  struct QueuedWord {
    std::string_view word;
    uint64_t hash;
  };
  struct Scratch {
    WordCache cache;
    std::vector<int32_t> symbols, prev, next;
    std::vector<uint64_t> pairs, heap;
    QueuedWord queue[kQueueDepth];
    size_t queue_head = 0, queue_size = 0;
  };

  // `vocab`: (token as written in tokenizer.json, id). `merges`: (left, right, merged) ids in rank
  // order. The caller has checked that every id is valid.
  BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
           const std::vector<std::array<int32_t, 3>>& merges, BpeOptions options);
  ~BpeModel();

  // Appends the ids of one word (raw bytes for byte-level models, else the normalized text) to
  // `out`, possibly later: queued words are encoded in order by the next calls, and all of them by
  // flush(). The word's bytes must stay unchanged until then.
  void queue_word(std::string_view word, std::vector<int32_t>& out, Scratch& scratch) const;
  void flush(std::vector<int32_t>& out, Scratch& scratch) const;

  // The token string of `id` as written in tokenizer.json, or nullptr.
  const std::string* token_of(int32_t id) const;
  int32_t id_of(std::string_view token_as_written) const;
  size_t size() const { return vocab_size_; }
  int32_t max_id() const { return static_cast<int32_t>(tokens_.size()) - 1; }
  const BpeOptions& options() const { return options_; }

  // True when no vocabulary token has `cp` right after a different character: then no merge can
  // join a run of `cp` to what precedes it, and words may be cut before such runs without
  // changing the result (used to cut sentencepiece-style text at its "▁" word starts).
  bool never_joins_before(uint32_t cp) const;

 private:
  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  void push_char(std::string_view ch, int32_t id, std::vector<int32_t>& symbols, bool& unk_pending) const;
  uint64_t pair_merge(int32_t left, int32_t right) const {
    const uint64_t* v = merges_.find((uint64_t(uint32_t(left)) << 32) | uint32_t(right));
    return v ? *v : kNoMerge;
  }
  void encode_word(std::string_view word, uint64_t hash, std::vector<int32_t>& out, Scratch& scratch) const;
  void merge_short(Scratch& scratch) const;
  void merge_long(Scratch& scratch) const;

  static constexpr uint64_t kNoMerge = ~0ull;
  BpeOptions options_;
  StringIdMap vocab_;                 // key: raw bytes (byte-level) or the token as written
  std::vector<std::string> tokens_;   // id -> token as written ("" for holes)
  std::vector<bool> present_;
  size_t vocab_size_ = 0;
  U64Map merges_;                     // (left << 32 | right) -> (rank << 32 | merged)
  std::vector<int32_t> bmp_char_ids_; // code point < 0x10000 -> id of the one-character token
  U64Map astral_char_ids_;
  std::array<int32_t, 256> byte_ids_{};      // byte-level: byte -> id of its one-character token
  std::array<int32_t, 256> fallback_ids_{};  // byte -> id of "<0xNN>"
};

}  // namespace fm::data::hf
