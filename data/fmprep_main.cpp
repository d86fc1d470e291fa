// fmprep: tokenizes JSONL and text files into a token shard (PREFIX.bin + PREFIX.idx).
// Usage and formats: docs/data.md. Exit codes: 0 done, 2 bad input (flags, files, lines),
// 1 anything else (I/O failures).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "data/prep.h"
#include "data/shard.h"
#include "data/tokenizer_choice.h"
#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace {

const char* kUsage = R"(usage: fmprep --output PREFIX [options] INPUT...
       fmprep --check PREFIX

Tokenizes INPUT files into PREFIX.bin (tokens) and PREFIX.idx (document offsets).
INPUT: *.jsonl / *.ndjson (one JSON object per line) or plain UTF-8 text files.
--check validates an existing shard (index against tokens) and prints its header.

options:
  --output PREFIX               output prefix (required)
  --tokenizer PATH              tokenizer.json or a directory holding one (default: byte-level)
  --text_key KEY                JSON field holding the text (default: text)
  --threads N                   tokenizing threads (default: all cores)
  --on_bad_line error|skip      stop at the first bad line with exit code 2, or skip and count
                                (default: error)
  --text_split file|paragraph|line
                                what a document is in a plain text file (default: file)
  --add_special_tokens true|false
                                apply the tokenizer's template, e.g. a leading <s> (default: true)
  --quiet                       no progress output
  --help                        this text
)";

struct Args {
  fm::data::PrepOptions prep;
  std::string tokenizer;
  std::string check;
};

const std::vector<std::string> kFlags = {"--output", "--tokenizer", "--text_key", "--threads", "--on_bad_line",
                                         "--text_split", "--add_special_tokens", "--quiet", "--help",
                                         "--check"};

std::string choice(const std::string& flag, const std::string& value, const std::vector<std::string>& valid) {
  for (const auto& v : valid)
    if (v == value) return v;
  throw fm::InputError(flag, fmt::format("'{}' is not one of: {}", value, fm::join(valid, ", ")),
                       fm::suggestion_hint(value, valid));
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      a.prep.inputs.push_back(arg);
      continue;
    }
    std::string flag = arg, value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq), value = arg.substr(eq + 1), has_value = true;
    }
    if (flag == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (flag == "--quiet") {
      a.prep.progress = false;
      continue;
    }
    bool known = false;
    for (const auto& f : kFlags) known |= f == flag;
    if (!known) throw fm::InputError(flag, "unknown flag", fm::suggestion_hint(flag, kFlags));
    if (!has_value) {
      if (i + 1 >= argc) throw fm::InputError(flag, "missing value", "see fmprep --help");
      value = argv[++i];
    }
    if (flag == "--check") a.check = value;
    else if (flag == "--output") a.prep.output_prefix = value;
    else if (flag == "--tokenizer") a.tokenizer = value;
    else if (flag == "--text_key") a.prep.text_key = value;
    else if (flag == "--threads") {
      long long n;
      if (!fm::parse_int64(value, n) || n < 1 || n > 4096)
        throw fm::InputError(flag, fmt::format("'{}' is not a thread count", value), "give a whole number >= 1");
      a.prep.threads = static_cast<int>(n);
    } else if (flag == "--on_bad_line") {
      a.prep.on_bad_line = choice(flag, value, {"error", "skip"}) == "skip" ? fm::data::OnBadLine::kSkip
                                                                            : fm::data::OnBadLine::kError;
    } else if (flag == "--text_split") {
      std::string v = choice(flag, value, {"file", "paragraph", "line"});
      a.prep.text_split = v == "file"        ? fm::data::TextSplit::kFile
                          : v == "paragraph" ? fm::data::TextSplit::kParagraph
                                             : fm::data::TextSplit::kLine;
    } else if (flag == "--add_special_tokens") {
      a.prep.add_special_tokens = choice(flag, value, {"true", "false"}) == "true";
    }
  }
  if (!a.check.empty()) return a;
  if (a.prep.output_prefix.empty())
    throw fm::InputError("--output", "no output prefix given", "e.g. --output data/corpus writes data/corpus.bin and .idx");
  if (a.prep.inputs.empty()) throw fm::InputError("fmprep", "no input files given", "see fmprep --help");
  return a;
}

int check(const std::string& prefix) {
  auto shard = fm::data::Shard::open(prefix);
  const fm::data::ShardInfo& i = shard->info();
  std::printf("fmprep: %s: ok\n", prefix.c_str());
  std::printf("fmprep: documents: %lld\nfmprep: tokens: %lld\nfmprep: token bytes: %d\n",
              static_cast<long long>(i.num_documents), static_cast<long long>(i.num_tokens), i.token_bytes);
  std::printf("fmprep: vocab_size: %lld\nfmprep: bos_id: %d\nfmprep: eos_id: %d\n",
              static_cast<long long>(i.vocab_size), i.bos_id, i.eos_id);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Args args = parse(argc, argv);
    if (!args.check.empty()) return check(args.check);
    fm::data::ChosenTokenizer tok = fm::data::choose_tokenizer(args.tokenizer);
    fm::data::PrepSummary sum = fm::data::prepare_shard(args.prep, *tok.tokenizer, tok.fingerprint);
    std::string text = "tokenizer: " + tok.tokenizer->name() + "\n" + sum.format();
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      std::printf("fmprep: %s\n", text.substr(start, nl - start).c_str());
      start = nl == std::string::npos ? text.size() : nl + 1;
    }
    return 0;
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return fm::kExitRuntimeFault;
  }
}
