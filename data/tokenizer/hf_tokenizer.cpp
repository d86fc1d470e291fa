#include "data/tokenizer/hf_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "data/tokenizer/added_tokens.h"
#include "data/tokenizer/bpe_model.h"
#include "data/tokenizer/decoders.h"
#include "data/tokenizer/hf_config.h"
#include "data/tokenizer/split_patterns.h"
#include "data/tokenizer/unicode.h"

namespace fm::data {

namespace {

using hf::AddedToken;
using hf::AddedTokenMatcher;
using hf::BpeModel;
using hf::HfConfig;
using hf::NormalizerStep;
using hf::PrependScheme;
using hf::replace_all;
using hf::SplitPattern;

std::atomic<uint64_t> next_serial{1};

// Per-thread buffers of one tokenizer.
struct Scratch {
  BpeModel::Scratch bpe;
  std::vector<AddedTokenMatcher::Piece> pieces, normalized_pieces;
  std::string normalized, replaced, transformed, prefixed;
};

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(HfConfig cfg);

  std::string name() const override { return "hf-bpe:" + path_; }
  int64_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const override;

 private:
  // One step of the pre-tokenizer after the Metaspace / none cases.
  struct Stage {
    enum class Kind { kSplit, kPrefixSpace } kind;
    SplitPattern pattern;
  };

  Scratch& scratch() const;
  void normalize_into(std::string_view text, std::string& out, std::string& tmp) const;
  std::string normalize(std::string_view text) const;
  int32_t token_id(const std::string& token) const;
  void encode_plain(std::string_view piece, bool at_start, std::vector<int32_t>& out, Scratch& s) const;
  void pre_tokenize(std::string_view text, bool at_start, std::vector<int32_t>& out, Scratch& s) const;
  void split_words(std::string_view text, bool at_start, std::vector<int32_t>& out, Scratch& s) const;
  void run_stages(size_t stage, std::string_view word, std::vector<int32_t>& out, Scratch& s) const;
  void encode_words(std::string_view text, std::vector<int32_t>& out, Scratch& s) const;

  std::string path_;
  std::vector<NormalizerStep> normalizer_;
  std::optional<hf::MetaspaceConfig> metaspace_;
  std::vector<Stage> stages_;
  std::unique_ptr<BpeModel> model_;
  AddedTokenMatcher raw_matcher_, normalized_matcher_;
  std::unordered_map<int32_t, std::string> added_content_;
  std::unordered_map<std::string, int32_t> added_ids_;
  std::unordered_set<std::string> special_tokens_;
  std::vector<int32_t> prefix_, suffix_;
  bool has_decoder_ = false;
  std::vector<hf::DecoderStep> decoder_;
  // Sentencepiece-style text may be cut into words before each run of this character (see
  // BpeModel::never_joins_before); empty when it may not.
  std::string word_start_;
  int64_t vocab_size_ = 0;
  int32_t bos_id_ = -1, eos_id_ = -1;
  uint64_t serial_ = next_serial.fetch_add(1);
};

HfTokenizer::HfTokenizer(HfConfig cfg)
    : path_(cfg.path),
      normalizer_(std::move(cfg.normalizer)),
      metaspace_(cfg.metaspace),
      prefix_(std::move(cfg.template_prefix)),
      suffix_(std::move(cfg.template_suffix)),
      has_decoder_(cfg.has_decoder),
      decoder_(std::move(cfg.decoder)) {
  for (SplitPattern p : cfg.splits) stages_.push_back({Stage::Kind::kSplit, p});
  if (cfg.byte_level && cfg.byte_level_prefix_space) stages_.push_back({Stage::Kind::kPrefixSpace, SplitPattern::kGpt2});
  if (cfg.byte_level && cfg.byte_level_split) stages_.push_back({Stage::Kind::kSplit, SplitPattern::kGpt2});

  model_ = std::make_unique<BpeModel>(cfg.vocab, cfg.merges, cfg.bpe);
  cfg.vocab.clear();
  cfg.merges.clear();

  // Non-normalized tokens are looked for in the raw text, the others in each normalized piece,
  // special tokens first (the order `tokenizers` builds its matchers in).
  std::vector<std::string> raw_patterns, norm_patterns;
  std::vector<AddedToken> raw_tokens, norm_tokens;
  for (int pass = 0; pass < 2; ++pass) {
    for (const AddedToken& t : cfg.added_tokens) {
      if (t.special != (pass == 0)) continue;
      if (t.normalized) {
        norm_patterns.push_back(normalize(t.content));
        norm_tokens.push_back(t);
      } else {
        raw_patterns.push_back(t.content);
        raw_tokens.push_back(t);
      }
    }
  }
  raw_matcher_ = AddedTokenMatcher(std::move(raw_patterns), std::move(raw_tokens));
  normalized_matcher_ = AddedTokenMatcher(std::move(norm_patterns), std::move(norm_tokens));

  int32_t max_id = model_->max_id();
  for (const AddedToken& t : cfg.added_tokens) {
    // `tokenizers` decodes a normalized added token as its normalized form, and skips as special
    // only the tokens whose decoded string is the content of a special token.
    added_content_[t.id] = t.normalized ? normalize(t.content) : t.content;
    added_ids_[t.content] = t.id;
    if (t.special) special_tokens_.insert(t.content);
    max_id = std::max(max_id, t.id);
  }
  for (int32_t id : prefix_) max_id = std::max(max_id, id);
  for (int32_t id : suffix_) max_id = std::max(max_id, id);
  vocab_size_ = static_cast<int64_t>(max_id) + 1;

  std::string word_start;
  if (metaspace_) {
    word_start = metaspace_->replacement;
  } else if (stages_.empty()) {
    for (const NormalizerStep& step : normalizer_)
      if (step.kind == NormalizerStep::Kind::kReplace && step.text == " ") word_start = step.replacement;
  }
  if (!word_start.empty() && !cfg.bpe.ignore_merges && !cfg.bpe.byte_level && model_->id_of(word_start) >= 0) {
    uint32_t len;
    uint32_t cp = hf::decode_utf8(word_start.data(), 0, len);
    if (len == word_start.size() && model_->never_joins_before(cp)) word_start_ = word_start;
  }

  auto find_named = [&](const std::string& configured, std::initializer_list<const char*> names) {
    if (!configured.empty()) {
      int32_t id = token_id(configured);
      if (id >= 0) return id;
    }
    for (const char* name : names) {
      int32_t id = token_id(name);
      if (id >= 0) return id;
    }
    return -1;
  };
  bos_id_ = find_named(cfg.bos_token, {});
  if (bos_id_ < 0 && !prefix_.empty()) bos_id_ = prefix_.front();
  if (bos_id_ < 0) bos_id_ = find_named("", {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>"});
  eos_id_ = find_named(cfg.eos_token, {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
}

void HfTokenizer::normalize_into(std::string_view text, std::string& out, std::string& tmp) const {
  out.clear();
  size_t first = 0;
  if (!normalizer_.empty() && normalizer_[0].kind == NormalizerStep::Kind::kPrepend && !text.empty()) {
    out.append(normalizer_[0].text);  // built in place rather than inserted in front
    first = 1;
  }
  out.append(text);
  for (size_t i = first; i < normalizer_.size(); ++i) {
    const NormalizerStep& step = normalizer_[i];
    if (step.kind == NormalizerStep::Kind::kPrepend) {
      if (!out.empty()) out.insert(0, step.text);
    } else {
      replace_all(out, step.text, step.replacement, tmp);
      out.swap(tmp);
    }
  }
}

std::string HfTokenizer::normalize(std::string_view text) const {
  std::string out, tmp;
  normalize_into(text, out, tmp);
  return out;
}

int32_t HfTokenizer::token_id(const std::string& token) const {
  auto it = added_ids_.find(token);
  if (it != added_ids_.end()) return it->second;
  return model_->id_of(token);
}

Scratch& HfTokenizer::scratch() const {
  // A few tokenizers per thread at most; the most recently used one first.
  thread_local std::vector<std::pair<uint64_t, std::unique_ptr<Scratch>>> states;
  if (!states.empty() && states.front().first == serial_) return *states.front().second;
  for (size_t i = 1; i < states.size(); ++i) {
    if (states[i].first == serial_) {
      std::swap(states[0], states[i]);
      return *states.front().second;
    }
  }
  constexpr size_t kMaxTokenizersPerThread = 8;
  if (states.size() >= kMaxTokenizersPerThread) states.pop_back();
  states.insert(states.begin(), {serial_, std::make_unique<Scratch>()});
  return *states.front().second;
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string repaired;
  if (!hf::is_valid_utf8(text)) {
    repaired = hf::repair_utf8(text);
    text = repaired;
  }
  Scratch& s = scratch();
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + prefix_.size() + suffix_.size() + 4);
  if (add_special_tokens) ids.insert(ids.end(), prefix_.begin(), prefix_.end());
  if (raw_matcher_.empty()) {
    encode_plain(text, true, ids, s);
  } else {
    raw_matcher_.split(text, s.pieces);
    for (const AddedTokenMatcher::Piece& p : s.pieces) {
      if (p.id >= 0) ids.push_back(p.id);
      else encode_plain(text.substr(p.begin, p.end - p.begin), p.begin == 0, ids, s);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), suffix_.begin(), suffix_.end());
  return ids;
}

void HfTokenizer::encode_plain(std::string_view piece, bool at_start, std::vector<int32_t>& out, Scratch& s) const {
  if (piece.empty()) return;
  std::string_view text = piece;
  if (!normalizer_.empty()) {
    normalize_into(piece, s.normalized, s.replaced);
    text = s.normalized;
  }
  if (normalized_matcher_.empty()) {
    pre_tokenize(text, at_start, out, s);
    return;
  }
  normalized_matcher_.split(text, s.normalized_pieces);
  for (const AddedTokenMatcher::Piece& p : s.normalized_pieces) {
    if (p.id >= 0) out.push_back(p.id);
    else pre_tokenize(text.substr(p.begin, p.end - p.begin), at_start && p.begin == 0, out, s);
  }
}

void HfTokenizer::pre_tokenize(std::string_view text, bool at_start, std::vector<int32_t>& out, Scratch& s) const {
  split_words(text, at_start, out, s);
  // The words point into this piece's buffers, which the next piece reuses.
  model_->flush(out, s.bpe);
}

void HfTokenizer::split_words(std::string_view text, bool at_start, std::vector<int32_t>& out, Scratch& s) const {
  if (text.empty()) return;
  if (metaspace_) {
    const std::string& r = metaspace_->replacement;
    replace_all(text, " ", r, s.transformed);
    bool prepend = metaspace_->scheme == PrependScheme::kAlways ||
                   (metaspace_->scheme == PrependScheme::kFirst && at_start);
    if (prepend && s.transformed.compare(0, r.size(), r) != 0) s.transformed.insert(0, r);
    std::string_view t = s.transformed;
    if (!metaspace_->split) {
      encode_words(t, out, s);
      return;
    }
    // Split before every replacement character, which starts the next piece.
    size_t begin = 0;
    while (begin < t.size()) {
      size_t next = t.find(r, begin + (t.compare(begin, r.size(), r) == 0 ? r.size() : 0));
      if (next == std::string_view::npos) next = t.size();
      model_->queue_word(t.substr(begin, next - begin), out, s.bpe);
      begin = next;
    }
    return;
  }
  if (stages_.empty()) {
    encode_words(text, out, s);
    return;
  }
  run_stages(0, text, out, s);
}

void HfTokenizer::run_stages(size_t stage, std::string_view word, std::vector<int32_t>& out, Scratch& s) const {
  if (stage == stages_.size()) {
    model_->queue_word(word, out, s.bpe);
    return;
  }
  const Stage& st = stages_[stage];
  if (st.kind == Stage::Kind::kPrefixSpace) {
    if (word.front() == ' ') {
      run_stages(stage + 1, word, out, s);
    } else {
      model_->flush(out, s.bpe);  // queued words may point into s.prefixed
      s.prefixed.clear();
      s.prefixed.push_back(' ');
      s.prefixed.append(word);
      run_stages(stage + 1, s.prefixed, out, s);
    }
    return;
  }
  hf::for_each_split(st.pattern, word, [&](std::string_view piece) { run_stages(stage + 1, piece, out, s); });
}

void HfTokenizer::encode_words(std::string_view text, std::vector<int32_t>& out, Scratch& s) const {
  if (word_start_.empty()) {
    model_->queue_word(text, out, s.bpe);
    return;
  }
  // Cut before each run of the word-start character: the model gives the same ids per word as
  // for the whole text, and the words repeat, so the word cache serves most of them.
  const std::string_view r = word_start_;
  size_t begin = 0, pos = 0;
  while (true) {
    size_t hit = text.find(r, pos);
    if (hit == std::string_view::npos) break;
    bool follows_run = hit >= r.size() && text.compare(hit - r.size(), r.size(), r) == 0;
    if (hit > begin && !follows_run) {
      model_->queue_word(text.substr(begin, hit - begin), out, s.bpe);
      begin = hit;
    }
    pos = hit + r.size();
  }
  model_->queue_word(text.substr(begin), out, s.bpe);
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    const std::string* token = nullptr;
    auto it = added_content_.find(id);
    if (it != added_content_.end()) token = &it->second;
    else token = model_->token_of(id);
    if (token == nullptr) continue;  // unknown ids are skipped, as `tokenizers` does
    if (skip_special_tokens && special_tokens_.count(*token)) continue;
    tokens.push_back(*token);
  }
  return hf::decode_tokens(decoder_, has_decoder_, std::move(tokens));
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  return std::make_unique<HfTokenizer>(hf::read_hf_config(path));
}

}  // namespace fm::data
