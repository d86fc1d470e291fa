#include "runtime/checkpoint/pieces.h"

#include <algorithm>
#include <charconv>

#include "runtime/base/error.h"

namespace fm::checkpoint {

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Params:
      return "params";
    case Kind::ExpAvg:
      return "exp_avg";
    case Kind::ExpAvgSq:
      return "exp_avg_sq";
  }
  return "?";
}

std::optional<Kind> parse_kind(std::string_view s) {
  for (Kind k : kAllKinds)
    if (s == kind_name(k)) return k;
  return std::nullopt;
}

std::vector<Piece> pieces_of_range(const model::ParamLayout& layout, int64_t begin, int64_t end,
                                   bool include_replicas) {
  FM_CHECK(0 <= begin && begin <= end, "bad flat range");
  std::vector<Piece> out;
  end = std::min(end, layout.total);
  if (begin >= end) return out;
  // params are in buffer order: find the first tensor that ends after `begin`.
  auto it = std::upper_bound(layout.params.begin(), layout.params.end(), begin,
                             [](int64_t at, const model::ParamInfo& p) { return at < p.offset + p.numel(); });
  for (; it != layout.params.end() && it->offset < end; ++it) {
    if (it->replica && !include_replicas) continue;
    const int64_t lo = std::max(begin, it->offset), hi = std::min(end, it->offset + it->numel());
    if (lo < hi) out.push_back({it->name, lo - it->offset, hi - it->offset, lo});
  }
  return out;
}

std::optional<int64_t> flat_offset_of(const model::ParamLayout& layout, const std::string& name,
                                      int64_t element) {
  const model::ParamInfo* p = layout.find(name);
  if (!p || element < 0 || element > p->numel()) return std::nullopt;
  return p->offset + element;
}

model::ParamLayout full_layout(const model::LlamaConfig& c) {
  return model::make_param_layout(c, 0, int(c.num_layers_total()));
}

std::string piece_key(Kind kind, const std::string& name, int64_t begin, int64_t end) {
  return std::string(kind_name(kind)) + "/" + name + "[" + std::to_string(begin) + ":" + std::to_string(end) +
         "]";
}

bool parse_piece_key(std::string_view key, Kind& kind, std::string& name, int64_t& begin, int64_t& end) {
  const size_t slash = key.find('/');
  const size_t open = key.rfind('[');
  if (slash == std::string_view::npos || open == std::string_view::npos || open <= slash + 1 ||
      key.back() != ']')
    return false;
  auto k = parse_kind(key.substr(0, slash));
  if (!k) return false;
  const std::string_view range = key.substr(open + 1, key.size() - open - 2);
  const size_t colon = range.find(':');
  if (colon == std::string_view::npos) return false;
  auto num = [](std::string_view s, int64_t& v) {
    auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    return !s.empty() && r.ec == std::errc() && r.ptr == s.data() + s.size() && v >= 0;
  };
  int64_t b = 0, e = 0;
  if (!num(range.substr(0, colon), b) || !num(range.substr(colon + 1), e) || e < b) return false;
  kind = *k;
  name = std::string(key.substr(slash + 1, open - slash - 1));
  begin = b;
  end = e;
  return true;
}

}  // namespace fm::checkpoint
