#include "data/tokenizer/bpe_model.h"

#include <algorithm>
#include <functional>

#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/unicode.h"

namespace fm::data::hf {

namespace {

// Words longer than this are merged with the heap; shorter ones by rescanning an array.
constexpr size_t kShortWordSymbols = 48;
constexpr size_t kCacheInitialSlots = 1u << 12;
constexpr size_t kCacheMaxSlots = 1u << 18;
constexpr size_t kCacheMaxKeyBytes = 16u << 20;

}  // namespace

// --- WordCache -------------------------------------------------------------------------------

WordCache::WordCache() {
  slots_.assign(kCacheInitialSlots, Slot{});
  mask_ = slots_.size() - 1;
}

void WordCache::clear() {
  std::fill(slots_.begin(), slots_.end(), Slot{});
  keys_.clear();
  values_.clear();
  entries_ = 0;
}

const int32_t* WordCache::find(std::string_view word, uint64_t hash, uint32_t& count) const {
  const auto tag = static_cast<uint32_t>(hash >> 32);
  size_t i = hash & mask_;
  while (true) {
    const Slot& s = slots_[i];
    if (s.key_len == 0) return nullptr;
    if (s.tag == tag && s.key_len == word.size() && bytes_equal(keys_.data() + s.key_off, word.data(), word.size())) {
      count = s.val_len;
      return values_.data() + s.val_off;
    }
    i = (i + 1) & mask_;
  }
}

void WordCache::grow() {
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(old.size() * 2, Slot{});
  mask_ = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key_len == 0) continue;
    size_t i = hash_bytes(std::string_view(keys_).substr(s.key_off, s.key_len)) & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

void WordCache::insert(std::string_view word, uint64_t hash, const int32_t* ids, uint32_t count) {
  if (word.empty() || word.size() > kMaxWordBytes || count > word.size()) return;
  if ((entries_ + 1) * 2 > slots_.size()) {
    if (slots_.size() < kCacheMaxSlots) grow();
    else clear();
  }
  if (keys_.size() + word.size() > kCacheMaxKeyBytes) clear();
  size_t i = hash & mask_;
  while (slots_[i].key_len != 0) i = (i + 1) & mask_;
  slots_[i] = Slot{static_cast<uint32_t>(hash >> 32), static_cast<uint32_t>(keys_.size()),
                   static_cast<uint32_t>(values_.size()), static_cast<uint16_t>(word.size()),
                   static_cast<uint16_t>(count)};
  keys_.append(word);
  values_.insert(values_.end(), ids, ids + count);
  ++entries_;
}

// --- BpeModel --------------------------------------------------------------------------------

BpeModel::BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
                   const std::vector<std::array<int32_t, 3>>& merges, BpeOptions options)
    : options_(options) {
  const ByteLevelAlphabet& alphabet = byte_level_alphabet();
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) max_id = std::max(max_id, id);
  tokens_.assign(static_cast<size_t>(max_id + 1), std::string());
  present_.assign(static_cast<size_t>(max_id + 1), false);
  vocab_.reserve(vocab.size());
  bmp_char_ids_.assign(options_.byte_level ? 0 : 0x10000, -1);
  byte_ids_.fill(-1);
  fallback_ids_.fill(-1);
  std::string raw;
  for (const auto& [token, id] : vocab) {
    tokens_[static_cast<size_t>(id)] = token;
    present_[static_cast<size_t>(id)] = true;
    ++vocab_size_;
    if (options_.byte_level) {
      // Tokens with characters outside the alphabet can never match byte input.
      if (alphabet.to_bytes(token, raw)) vocab_.insert(raw, id);
    } else {
      vocab_.insert(token, id);
    }
    uint32_t len = 0;
    uint32_t cp = token.empty() ? 0 : decode_utf8(token.data(), 0, len);
    if (!token.empty() && len == token.size()) {
      if (options_.byte_level) {
        int b = alphabet.byte_of(cp);
        if (b >= 0) byte_ids_[static_cast<size_t>(b)] = id;
      } else if (cp < 0x10000) {
        bmp_char_ids_[cp] = id;
      } else {
        astral_char_ids_.insert_or_assign(cp, static_cast<uint64_t>(id));
      }
    }
    // "<0xNN>": the byte-fallback tokens.
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') {
      auto hex = [](char c) {
        return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      };
      int hi = hex(token[3]), lo = hex(token[4]);
      if (hi >= 0 && lo >= 0) fallback_ids_[static_cast<size_t>(hi * 16 + lo)] = id;
    }
  }
  merges_.reset(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    merges_.insert_or_assign((uint64_t(uint32_t(m[0])) << 32) | uint32_t(m[1]),
                             (uint64_t(rank) << 32) | uint32_t(m[2]));
  }
}

BpeModel::~BpeModel() = default;

const std::string* BpeModel::token_of(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !present_[static_cast<size_t>(id)])
    return nullptr;
  return &tokens_[static_cast<size_t>(id)];
}

int32_t BpeModel::id_of(std::string_view token_as_written) const {
  if (!options_.byte_level) return vocab_.find(token_as_written);
  std::string raw;
  if (!byte_level_alphabet().to_bytes(token_as_written, raw)) return -1;
  return vocab_.find(raw);
}

bool BpeModel::never_joins_before(uint32_t target) const {
  if (options_.byte_level) return false;
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (!present_[id]) continue;
    const std::string& t = tokens_[id];
    uint32_t prev = target, len;
    for (size_t i = 0; i < t.size(); i += len) {
      uint32_t cp = decode_utf8(t.data(), i, len);
      if (cp == target && prev != target) return false;
      prev = cp;
    }
  }
  return true;
}

void BpeModel::push_char(std::string_view ch, int32_t id, std::vector<int32_t>& symbols,
                         bool& unk_pending) const {
  if (id >= 0) {
    if (unk_pending) {
      symbols.push_back(options_.unk_id);
      unk_pending = false;
    }
    symbols.push_back(id);
    return;
  }
  if (options_.byte_fallback) {
    bool all = true;
    for (unsigned char b : ch) all = all && fallback_ids_[b] >= 0;
    if (all) {
      // As in `tokenizers`, a pending unk is not flushed before the byte tokens.
      for (unsigned char b : ch) symbols.push_back(fallback_ids_[b]);
      return;
    }
  }
  if (options_.unk_id < 0) return;
  if (unk_pending && !options_.fuse_unk) symbols.push_back(options_.unk_id);
  unk_pending = true;
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  bool unk_pending = false;
  if (options_.byte_level) {
    const ByteLevelAlphabet& alphabet = byte_level_alphabet();
    std::string ch;
    for (unsigned char b : word) {
      int32_t id = byte_ids_[b];
      if (id >= 0 && !unk_pending) {
        symbols.push_back(id);
        continue;
      }
      ch.clear();
      if (id < 0) append_utf8(ch, alphabet.char_of(b));  // the fallback sees the alphabet's character
      push_char(ch, id, symbols, unk_pending);
    }
  } else {
    uint32_t len;
    for (size_t i = 0; i < word.size(); i += len) {
      uint32_t cp = decode_utf8(word.data(), i, len);
      int32_t id;
      if (cp < 0x10000) {
        id = bmp_char_ids_[cp];
      } else {
        const uint64_t* v = astral_char_ids_.find(cp);
        id = v ? static_cast<int32_t>(*v) : -1;
      }
      push_char(word.substr(i, len), id, symbols, unk_pending);
    }
  }
  if (unk_pending) symbols.push_back(options_.unk_id);
}

void BpeModel::merge_short(Scratch& st) const {
  std::vector<int32_t>& s = st.symbols;
  std::vector<uint64_t>& pr = st.pairs;
  size_t n = s.size();
  pr.resize(n - 1);
  for (size_t i = 0; i + 1 < n; ++i) pr[i] = pair_merge(s[i], s[i + 1]);
  while (n > 1) {
    uint64_t best = kNoMerge;
    size_t at = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (pr[i] < best) {  // strict: the leftmost of equal pairs wins
        best = pr[i];
        at = i;
      }
    }
    if (best == kNoMerge) break;
    s[at] = static_cast<int32_t>(best & 0xffffffffu);
    s.erase(s.begin() + static_cast<std::ptrdiff_t>(at) + 1);
    pr.erase(pr.begin() + static_cast<std::ptrdiff_t>(at));
    --n;
    if (at > 0) pr[at - 1] = pair_merge(s[at - 1], s[at]);
    if (at + 1 < n) pr[at] = pair_merge(s[at], s[at + 1]);
  }
}

void BpeModel::merge_long(Scratch& st) const {
  std::vector<int32_t>& s = st.symbols;
  const int32_t n = static_cast<int32_t>(s.size());
  st.prev.resize(s.size());
  st.next.resize(s.size());
  for (int32_t i = 0; i < n; ++i) {
    st.prev[static_cast<size_t>(i)] = i - 1;
    st.next[static_cast<size_t>(i)] = i + 1;
  }
  // Heap entries: rank << 32 | position, smallest first (rank, then position, as `tokenizers`).
  std::vector<uint64_t>& heap = st.heap;
  heap.clear();
  auto push = [&](int32_t pos) {
    uint64_t m = pair_merge(s[static_cast<size_t>(pos)], s[static_cast<size_t>(st.next[static_cast<size_t>(pos)])]);
    if (m == kNoMerge) return;
    heap.push_back((m & 0xffffffff00000000ull) | uint32_t(pos));
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    uint64_t top = heap.back();
    heap.pop_back();
    int32_t pos = static_cast<int32_t>(top & 0xffffffffu);
    size_t p = static_cast<size_t>(pos);
    if (s[p] < 0) continue;  // merged into its left neighbour
    int32_t right = st.next[p];
    if (right >= n) continue;
    uint64_t m = pair_merge(s[p], s[static_cast<size_t>(right)]);
    if (m == kNoMerge || (m >> 32) != (top >> 32)) continue;  // stale entry
    s[p] = static_cast<int32_t>(m & 0xffffffffu);
    s[static_cast<size_t>(right)] = -1;
    int32_t after = st.next[static_cast<size_t>(right)];
    st.next[p] = after;
    if (after < n) st.prev[static_cast<size_t>(after)] = pos;
    if (st.prev[p] >= 0) push(st.prev[p]);
    if (after < n) push(pos);
  }
  s.erase(std::remove(s.begin(), s.end(), -1), s.end());
}

void BpeModel::queue_word(std::string_view word, std::vector<int32_t>& out, Scratch& st) const {
  if (word.empty()) return;
  uint64_t hash = hash_bytes(word);
  if (options_.ignore_merges) vocab_.prefetch(hash);
  st.cache.prefetch(hash);
  if (st.queue_size == kQueueDepth) {
    const QueuedWord& oldest = st.queue[st.queue_head];
    encode_word(oldest.word, oldest.hash, out, st);
    st.queue[st.queue_head] = QueuedWord{word, hash};
    st.queue_head = (st.queue_head + 1) % kQueueDepth;
  } else {
    st.queue[(st.queue_head + st.queue_size++) % kQueueDepth] = QueuedWord{word, hash};
  }
}

void BpeModel::flush(std::vector<int32_t>& out, Scratch& st) const {
  for (; st.queue_size > 0; --st.queue_size) {
    const QueuedWord& w = st.queue[st.queue_head];
    encode_word(w.word, w.hash, out, st);
    st.queue_head = (st.queue_head + 1) % kQueueDepth;
  }
  st.queue_head = 0;
}

void BpeModel::encode_word(std::string_view word, uint64_t hash, std::vector<int32_t>& out, Scratch& st) const {
  if (options_.ignore_merges) {
    int32_t id = vocab_.find(word, hash);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  uint32_t count;
  if (const int32_t* hit = st.cache.find(word, hash, count)) {
    out.insert(out.end(), hit, hit + count);
    return;
  }
  std::vector<int32_t>& s = st.symbols;
  s.clear();
  initial_symbols(word, s);
  if (s.size() > 1) {
    if (s.size() <= kShortWordSymbols) merge_short(st);
    else merge_long(st);
  }
  st.cache.insert(word, hash, s.data(), static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

}  // namespace fm::data::hf
