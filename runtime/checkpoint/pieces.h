// The layout-independent stored form: tensors by our name, cut into element ranges.
//
// A stage keeps its parameters in one flat buffer (model/param_layout.h); a ZeRO rank owns a
// contiguous range of it. What a rank stores is that range expressed as pieces: (tensor name,
// element range within the row-major tensor). Tied replicas are never stored (the owner's copy
// is); a range may reach past the buffer's end (ZeRO's alignment padding), which is not stored.
// Reading maps back: any flat range of any stage layout of the same model is a list of pieces,
// replicas included, filled from whatever stored pieces cover them.
//
// Three kinds of values share this form: the parameters and Adam's two moments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"
#include "model/param_layout.h"

namespace fm::checkpoint {

enum class Kind { Params, ExpAvg, ExpAvgSq };
inline constexpr Kind kAllKinds[] = {Kind::Params, Kind::ExpAvg, Kind::ExpAvgSq};
const char* kind_name(Kind k);  // "params", "exp_avg", "exp_avg_sq"
std::optional<Kind> parse_kind(std::string_view s);

// Elements [begin, end) of tensor `name` (row-major), found at element `flat` of a stage buffer.
struct Piece {
  std::string name;
  int64_t begin = 0, end = 0;
  int64_t flat = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const Piece&) const = default;
};

// The pieces of [begin, end) of `layout`'s flat buffer, in buffer order. With include_replicas
// false (what a rank stores) tied replicas are left out; with true (what a rank must fill) they
// are listed under their owner's name. Elements at or past layout.total belong to no piece.
std::vector<Piece> pieces_of_range(const model::ParamLayout& layout, int64_t begin, int64_t end,
                                   bool include_replicas = false);

// The flat buffer offset of element `element` of tensor `name` in `layout`, or nullopt when the
// layout does not hold the tensor (owner or replica).
std::optional<int64_t> flat_offset_of(const model::ParamLayout& layout, const std::string& name,
                                      int64_t element);

// The tensors of the whole model (no replicas), in model order: what a complete checkpoint covers.
model::ParamLayout full_layout(const model::LlamaConfig& c);

// The name a piece is stored under in a shard file: "<kind>/<name>[<begin>:<end>]".
std::string piece_key(Kind kind, const std::string& name, int64_t begin, int64_t end);
// The reverse; false when `key` is not of that form.
bool parse_piece_key(std::string_view key, Kind& kind, std::string& name, int64_t& begin, int64_t& end);

}  // namespace fm::checkpoint
