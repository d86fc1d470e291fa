// Hugging Face tokenizer.json tokenizers with a BPE model, giving exactly the ids of the
// `tokenizers` library (0.23): sentencepiece-style BPE with byte fallback (LLaMA 2, Mistral: a
// Prepend/Replace normalizer or a Metaspace pre-tokenizer) and byte-level BPE with the LLaMA 3 or
// GPT-2 split pattern. Added/special tokens are found in the text first; the TemplateProcessing
// post-processor applies with add_special_tokens; decode runs the file's decoder chain.
//
// Text is bytes: invalid UTF-8 is first repaired, each maximal invalid subsequence becoming one
// U+FFFD (as Python's bytes.decode("utf-8", errors="replace")), so the ids are those `tokenizers`
// gives for the repaired string.
//
// The tokenizer is immutable; encode and decode may be called from many threads at once (each
// thread keeps its own word cache).
#pragma once

#include <memory>
#include <string>

#include "data/tokenizer/tokenizer.h"

namespace fm::data {

// `path`: a tokenizer.json file, or a directory holding one (a tokenizer_config.json beside it
// names bos and eos). Throws fm::InputError naming the file, and the JSON key where there is one,
// when the file is missing or malformed or uses something this implementation does not reproduce.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path);

}  // namespace fm::data
