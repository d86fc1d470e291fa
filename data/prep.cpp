#include "data/prep.h"

#include <unistd.h>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <tbb/parallel_pipeline.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "data/mapped_file.h"
#include "data/utf8.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/base/text.h"

namespace fm::data {

const char* bad_line_name(BadLine kind) {
  switch (kind) {
    case BadLine::kMalformedJson: return "malformed JSON";
    case BadLine::kMissingKey: return "missing key";
    case BadLine::kNotString: return "text not a string";
    case BadLine::kInvalidUtf8: return "invalid UTF-8";
  }
  return "?";
}

int64_t PrepSummary::total_skipped() const {
  int64_t n = 0;
  for (int64_t s : skipped) n += s;
  return n;
}

std::string PrepSummary::format() const {
  const double mb_per_s = seconds > 0 ? static_cast<double>(input_bytes) / 1e6 / seconds : 0.0;
  std::string s = fmt::format(
      "documents: {}\ntokens: {}\ntokens per document: {:.1f}\ninput: {} in {:.2f} s ({:.2f} MB/s)\n", documents,
      tokens, documents ? static_cast<double>(tokens) / static_cast<double>(documents) : 0.0,
      human_bytes(static_cast<double>(input_bytes)), seconds, mb_per_s);
  s += fmt::format("skipped lines: {}", total_skipped());
  if (total_skipped()) {
    std::vector<std::string> parts;
    for (int k = 0; k < kNumBadLineKinds; ++k)
      if (skipped[k]) {
        std::string name = bad_line_name(static_cast<BadLine>(k));
        if (static_cast<BadLine>(k) == BadLine::kMissingKey) name += " '" + text_key + "'";
        parts.push_back(fmt::format("{} {}", skipped[k], name));
      }
    s += " (" + join(parts, ", ") + ")";
  }
  s += "\n";
  if (empty_documents) s += fmt::format("empty documents left out: {}\n", empty_documents);
  s += fmt::format("output: {}.bin ({} tokens of {} bytes, vocab_size {}), {}.idx\n", output_prefix,
                   shard.num_tokens, shard.token_bytes, shard.vocab_size, output_prefix);
  return s;
}

namespace {

bool is_jsonl_name(const std::string& path) {
  auto ends = [&](const char* suffix) {
    size_t n = std::strlen(suffix);
    return path.size() >= n && path.compare(path.size() - n, n, suffix) == 0;
  };
  return ends(".jsonl") || ends(".ndjson");
}

struct InputFile {
  std::string path;
  MappedFile map;
  bool jsonl = false;
};

struct BadRecord {
  int64_t line = 0;
  BadLine kind = BadLine::kMalformedJson;
  std::string message, hint;
};

// A run of whole lines of one file (or a whole file), tokenized by one task.
struct Chunk {
  int file = 0;
  int64_t first_line = 1;
  std::string_view text;
  bool whole_file = false;
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_lengths;
  int64_t empty_documents = 0;
  std::vector<BadRecord> bad;
};

bool is_blank(std::string_view line) {
  return std::all_of(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

std::string_view strip_eol(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

const char* json_type_name(const rapidjson::Value& v) {
  if (v.IsNull()) return "null";
  if (v.IsBool()) return "a boolean";
  if (v.IsNumber()) return "a number";
  if (v.IsArray()) return "an array";
  if (v.IsObject()) return "an object";
  return "a string";
}

class Tokenizing {
 public:
  Tokenizing(const PrepOptions& o, const Tokenizer& t) : opt_(o), tok_(t) {}

  void run(Chunk& c, const InputFile& file) const {
    if (file.jsonl) jsonl(c);
    else if (c.whole_file) document(c, c.text, c.first_line);
    else lines(c);
  }

 private:
  bool stop_after_bad(const Chunk& c) const { return opt_.on_bad_line == OnBadLine::kError && !c.bad.empty(); }

  void emit(Chunk& c, std::string_view text) const {
    if (text.empty()) {
      ++c.empty_documents;
      return;
    }
    std::vector<int32_t> ids = tok_.encode(text, opt_.add_special_tokens);
    ids.push_back(tok_.eos_id());
    c.tokens.insert(c.tokens.end(), ids.begin(), ids.end());
    c.doc_lengths.push_back(static_cast<int64_t>(ids.size()));
  }

  // A plain-text document starting at line `line`; invalid UTF-8 is reported at its own line.
  void document(Chunk& c, std::string_view text, int64_t line) const {
    size_t bad = find_invalid_utf8(text);
    if (bad != std::string_view::npos) {
      LineCol lc = line_col_at(text, bad);
      c.bad.push_back({line + static_cast<int64_t>(lc.line) - 1, BadLine::kInvalidUtf8,
                       fmt::format("invalid UTF-8 at column {}", lc.col), "convert the file to UTF-8"});
      return;
    }
    emit(c, text);
  }

  void lines(Chunk& c) const {
    std::string_view rest = c.text;
    int64_t line = c.first_line;
    const char* block_begin = nullptr;
    const char* block_end = nullptr;
    int64_t block_line = 0;
    auto flush_block = [&] {
      if (block_begin) document(c, std::string_view(block_begin, block_end - block_begin), block_line);
      block_begin = nullptr;
    };
    while (!rest.empty() && !stop_after_bad(c)) {
      size_t nl = rest.find('\n');
      std::string_view raw = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      std::string_view content = strip_eol(raw);
      if (opt_.text_split == TextSplit::kLine) {
        if (!is_blank(content)) document(c, content, line);
      } else if (is_blank(content)) {
        flush_block();
      } else {
        if (!block_begin) block_begin = content.data(), block_line = line;
        block_end = content.data() + content.size();
      }
      ++line;
    }
    if (!stop_after_bad(c)) flush_block();
  }

  void jsonl(Chunk& c) const {
    rapidjson::Document doc;
    std::string_view rest = c.text;
    int64_t line = c.first_line - 1;
    while (!rest.empty() && !stop_after_bad(c)) {
      ++line;
      size_t nl = rest.find('\n');
      std::string_view raw = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (is_blank(raw)) continue;
      size_t bad = find_invalid_utf8(raw);
      if (bad != std::string_view::npos) {
        c.bad.push_back({line, BadLine::kInvalidUtf8, fmt::format("invalid UTF-8 at column {}", bad + 1),
                         "convert the file to UTF-8"});
        continue;
      }
      doc.Parse(raw.data(), raw.size());
      if (doc.HasParseError()) {
        c.bad.push_back({line, BadLine::kMalformedJson,
                         fmt::format("malformed JSON: {} (column {})", rapidjson::GetParseError_En(doc.GetParseError()),
                                     doc.GetErrorOffset() + 1),
                         "each line must hold one complete JSON object"});
        continue;
      }
      if (!doc.IsObject()) {
        c.bad.push_back({line, BadLine::kMalformedJson,
                         fmt::format("malformed JSON: expected an object, found {}", json_type_name(doc)),
                         "each line must hold one complete JSON object"});
        continue;
      }
      auto it = doc.FindMember(rapidjson::Value(opt_.text_key.data(), static_cast<rapidjson::SizeType>(opt_.text_key.size())));
      if (it == doc.MemberEnd()) {
        std::vector<std::string> keys;
        for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m)
          keys.emplace_back(m->name.GetString(), m->name.GetStringLength());
        std::string near = nearest_word(opt_.text_key, keys);
        c.bad.push_back({line, BadLine::kMissingKey,
                         fmt::format("no key '{}' (the object has: {})", opt_.text_key,
                                     keys.empty() ? std::string("no keys") : join(keys, ", ")),
                         near.empty() ? "choose the text field with --text_key"
                                      : fmt::format("did you mean --text_key {}?", near)});
        continue;
      }
      if (!it->value.IsString()) {
        c.bad.push_back({line, BadLine::kNotString,
                         fmt::format("'{}' is {}, expected a string", opt_.text_key, json_type_name(it->value)),
                         "the text field of every line must be a JSON string"});
        continue;
      }
      emit(c, std::string_view(it->value.GetString(), it->value.GetStringLength()));
    }
  }

  const PrepOptions& opt_;
  const Tokenizer& tok_;
};

class Progress {
 public:
  Progress(bool enabled, int64_t total_bytes)
      : enabled_(enabled), tty_(::isatty(2) == 1), total_(total_bytes), start_(Clock::now()), last_(start_) {}

  void update(int64_t docs, int64_t tokens, int64_t bytes, bool final = false) {
    if (!enabled_) return;
    auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!final && since < (tty_ ? 0.25 : 30.0)) return;
    if (final && !tty_ && !printed_) return;  // short non-interactive runs print only the summary
    last_ = now;
    printed_ = true;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double frac = total_ ? static_cast<double>(bytes) / static_cast<double>(total_) : 1.0;
    const double mbs = elapsed > 0 ? static_cast<double>(bytes) / 1e6 / elapsed : 0.0;
    std::string line = fmt::format("{:5.1f}% | {} documents | {} tokens | {:.1f} MB/s", 100.0 * frac,
                                   human_count(static_cast<double>(docs)), human_count(static_cast<double>(tokens)), mbs);
    if (tty_) {
      const int width = 24, filled = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r[%s%s] %s", std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                   line.c_str());
      if (final) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "fmprep: %s\n", line.c_str());
    }
    std::fflush(stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool enabled_, tty_, printed_ = false;
  int64_t total_;
  Clock::time_point start_, last_;
};

}  // namespace

PrepSummary prepare_shard(const PrepOptions& opt, const Tokenizer& tokenizer, uint64_t tokenizer_fingerprint) {
  if (opt.inputs.empty()) throw InputError("inputs", "no input files given", "name JSONL or text files to tokenize");
  std::vector<InputFile> files;
  int64_t total_bytes = 0;
  for (const std::string& path : opt.inputs) {
    InputFile f;
    f.path = path;
    f.map = MappedFile::open(path, "input file");
    if (f.map.size() == 0) throw InputError(path, "empty input file", "remove it from the inputs");
    f.jsonl = is_jsonl_name(path);
    total_bytes += static_cast<int64_t>(f.map.size());
    files.push_back(std::move(f));
  }
  if (opt.text_key.empty()) throw InputError("--text_key", "the text key must not be empty");

  const auto start = std::chrono::steady_clock::now();
  ShardWriter writer(opt.output_prefix, tokenizer.vocab_size(), tokenizer.bos_id(), tokenizer.eos_id(),
                     tokenizer_fingerprint);
  PrepSummary sum;
  sum.output_prefix = opt.output_prefix;
  sum.text_key = opt.text_key;
  sum.input_bytes = total_bytes;
  Progress progress(opt.progress, total_bytes);
  Tokenizing tokenizing(opt, tokenizer);

  // Input-stage cursor.
  size_t file_index = 0, offset = 0;
  int64_t line = 1;
  int64_t bytes_done = 0;
  std::atomic<bool> stop{false};
  std::optional<InputError> first_error;
  int64_t reported = 0;

  auto next_chunk = [&]() -> std::shared_ptr<Chunk> {
    while (file_index < files.size()) {
      const InputFile& f = files[file_index];
      const char* data = reinterpret_cast<const char*>(f.map.data());
      const size_t size = f.map.size();
      if (offset >= size) {
        ++file_index, offset = 0, line = 1;
        continue;
      }
      auto c = std::make_shared<Chunk>();
      c->file = static_cast<int>(file_index);
      c->first_line = line;
      size_t end = size;
      if (!f.jsonl && opt.text_split == TextSplit::kFile) {
        c->whole_file = true;
      } else if (offset + opt.chunk_bytes < size) {
        end = offset + opt.chunk_bytes;
        while (true) {
          const void* nl = std::memchr(data + end, '\n', size - end);
          end = nl ? static_cast<size_t>(static_cast<const char*>(nl) - data) + 1 : size;
          if (end == size || f.jsonl || opt.text_split == TextSplit::kLine) break;
          // Paragraph mode cuts only after a blank line, so no block straddles two chunks.
          size_t line_start = end - 1;
          while (line_start > offset && data[line_start - 1] != '\n') --line_start;
          if (is_blank(std::string_view(data + line_start, end - 1 - line_start))) break;
        }
      }
      c->text = std::string_view(data + offset, end - offset);
      line += std::count(c->text.begin(), c->text.end(), '\n');
      offset = end;
      return c;
    }
    return nullptr;
  };

  auto write_chunk = [&](const Chunk& c) {
    const InputFile& f = files[c.file];
    for (const BadRecord& b : c.bad) {
      const std::string where = fmt::format("{}:{}", f.path, b.line);
      if (opt.on_bad_line == OnBadLine::kError) {
        first_error.emplace(where, b.message, b.hint + " (--on_bad_line skip leaves such lines out)");
        stop = true;
        return;
      }
      sum.skipped[static_cast<int>(b.kind)] += 1;
      if (reported < opt.max_reported_bad_lines)
        log::warn("{}: skipped: {}", where, b.message);
      else if (reported == opt.max_reported_bad_lines)
        log::warn("further skipped lines are only counted (see the summary)");
      ++reported;
    }
    size_t pos = 0;
    for (int64_t len : c.doc_lengths) {
      writer.add_document(c.tokens.data() + pos, static_cast<size_t>(len));
      pos += static_cast<size_t>(len);
    }
    sum.documents += static_cast<int64_t>(c.doc_lengths.size());
    sum.tokens += static_cast<int64_t>(c.tokens.size());
    sum.empty_documents += c.empty_documents;
    bytes_done += static_cast<int64_t>(c.text.size());
    progress.update(sum.documents, sum.tokens, bytes_done);
  };

  // More threads than cores only adds contention. The cores this process may run on (a rank bound
  // to one core by mpirun gets 1), as oneTBB counts them, not the machine's.
  const int cores = std::max(1, tbb::this_task_arena::max_concurrency());
  const int threads = opt.threads > 0 ? std::min(opt.threads, cores) : cores;
  tbb::task_arena arena(threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        static_cast<size_t>(4 * threads),
        tbb::make_filter<void, std::shared_ptr<Chunk>>(tbb::filter_mode::serial_in_order,
                                                       [&](tbb::flow_control& fc) -> std::shared_ptr<Chunk> {
                                                         std::shared_ptr<Chunk> c = stop ? nullptr : next_chunk();
                                                         if (!c) fc.stop();
                                                         return c;
                                                       }) &
            tbb::make_filter<std::shared_ptr<Chunk>, std::shared_ptr<Chunk>>(
                tbb::filter_mode::parallel,
                [&](std::shared_ptr<Chunk> c) {
                  if (!stop) tokenizing.run(*c, files[c->file]);
                  return c;
                }) &
            tbb::make_filter<std::shared_ptr<Chunk>, void>(tbb::filter_mode::serial_in_order,
                                                           [&](std::shared_ptr<Chunk> c) {
                                                             if (!stop) write_chunk(*c);
                                                           }));
  });
  if (first_error) throw *first_error;
  if (sum.documents == 0)
    throw InputError(opt.inputs.size() == 1 ? opt.inputs[0] : std::string("inputs"),
                     fmt::format("no documents to write ({} lines skipped, {} empty documents)", sum.total_skipped(),
                                 sum.empty_documents),
                     "check --text_key and the input format");
  writer.finish();
  progress.update(sum.documents, sum.tokens, bytes_done, /*final=*/true);
  sum.shard = writer.info();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

}  // namespace fm::data
