// Reading a Hugging Face tokenizer.json into a plain description of the pipeline, checking that
// every part is one this implementation reproduces exactly. Anything else (another model type, a
// normalizer or pre-tokenizer we do not implement, an unknown key, truncation or padding) is an
// InputError naming the file and the JSON key, never a silent approximation.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "data/tokenizer/added_tokens.h"
#include "data/tokenizer/bpe_model.h"
#include "data/tokenizer/decoders.h"
#include "data/tokenizer/split_patterns.h"

namespace fm::data::hf {

struct NormalizerStep {
  enum class Kind { kPrepend, kReplace };
  Kind kind = Kind::kPrepend;
  std::string text;         // Prepend: what is put in front; Replace: the literal pattern
  std::string replacement;  // Replace
};

enum class PrependScheme { kAlways, kFirst, kNever };

struct MetaspaceConfig {
  std::string replacement;  // UTF-8 of the one replacement character
  uint32_t replacement_cp = 0;
  PrependScheme scheme = PrependScheme::kAlways;
  bool split = true;
};

struct HfConfig {
  std::string path;  // the tokenizer.json read

  std::vector<NormalizerStep> normalizer;

  // Pre-tokenizer: either a Metaspace alone, or Split patterns (in order) optionally followed by a
  // ByteLevel step (which may split with the GPT-2 pattern and prefix a space first).
  std::optional<MetaspaceConfig> metaspace;
  std::vector<SplitPattern> splits;
  bool byte_level = false;
  bool byte_level_prefix_space = false;
  bool byte_level_split = false;

  std::vector<std::pair<std::string, int32_t>> vocab;
  std::vector<std::array<int32_t, 3>> merges;
  BpeOptions bpe;

  std::vector<AddedToken> added_tokens;  // ids checked to be those `tokenizers` assigns

  // TemplateProcessing's single-sequence template around the text: ids before and after.
  std::vector<int32_t> template_prefix, template_suffix;

  bool has_decoder = false;
  std::vector<DecoderStep> decoder;

  // From a tokenizer_config.json beside the file, when there is one.
  std::string bos_token, eos_token;
};

// `path`: a tokenizer.json file, or a directory holding one. Throws InputError.
HfConfig read_hf_config(const std::string& path);

}  // namespace fm::data::hf
