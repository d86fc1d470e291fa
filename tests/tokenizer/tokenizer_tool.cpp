// Test driver for the tokenizers (not a user-facing program).
//
//   tokenizer_tool encode TOKENIZER CASES OUT [--threads N]
//       CASES: u32 count, then per case u32 length + bytes. OUT, per case: for add_special_tokens
//       false then true, u32 n + n i32 ids, then decode(ids, skip_special_tokens=false) and
//       decode(ids, true) as u32 length + bytes. With --threads N, every case is encoded again
//       from N threads at once and must give the same ids (exit 1 otherwise).
//   tokenizer_tool bench TOKENIZER TEXT [--repeat R]
//       Single-thread encode speed over the lines of TEXT and over TEXT as one string.
//   tokenizer_tool info TOKENIZER
// TOKENIZER is a tokenizer.json (or its directory), or "byte" for the byte-level tokenizer.
// Input errors print the one-line message and exit 2.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "data/tokenizer/hf_tokenizer.h"
#include "data/tokenizer/tokenizer.h"
#include "runtime/base/error.h"

namespace {

using fm::data::Tokenizer;

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& spec) {
  if (spec == "byte") return std::make_unique<fm::data::ByteTokenizer>();
  return fm::data::load_hf_tokenizer(spec);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fm::InputError(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint32_t read_u32(const std::string& buf, size_t& pos) {
  if (pos + 4 > buf.size()) throw fm::InputError("cases", "truncated at offset " + std::to_string(pos));
  uint32_t v;
  std::memcpy(&v, buf.data() + pos, 4);
  pos += 4;
  return v;
}

void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
void put_bytes(std::string& out, const std::string& s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out += s;
}

int run_encode(const Tokenizer& tok, const std::string& cases_path, const std::string& out_path, int threads) {
  std::string buf = read_all(cases_path);
  size_t pos = 0;
  uint32_t count = read_u32(buf, pos);
  std::vector<std::string> cases(count);
  for (auto& c : cases) {
    uint32_t len = read_u32(buf, pos);
    if (pos + len > buf.size()) throw fm::InputError(cases_path, "truncated case");
    c.assign(buf, pos, len);
    pos += len;
  }
  std::vector<std::vector<int32_t>> plain(count), special(count);
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    plain[i] = tok.encode(cases[i], false);
    special[i] = tok.encode(cases[i], true);
    for (const auto* ids : {&plain[i], &special[i]}) {
      put_u32(out, static_cast<uint32_t>(ids->size()));
      out.append(reinterpret_cast<const char*>(ids->data()), ids->size() * 4);
      put_bytes(out, tok.decode(*ids, false));
      put_bytes(out, tok.decode(*ids, true));
    }
  }
  std::ofstream(out_path, std::ios::binary) << out;
  if (threads > 1) {
    // Every thread encodes all cases, starting at different places, against the same tokenizer.
    std::vector<size_t> mismatches(static_cast<size_t>(threads), 0);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (size_t k = 0; k < count; ++k) {
          size_t i = (k + static_cast<size_t>(t) * count / static_cast<size_t>(threads)) % count;
          if (tok.encode(cases[i], false) != plain[i] || tok.encode(cases[i], true) != special[i])
            ++mismatches[static_cast<size_t>(t)];
        }
      });
    }
    for (auto& th : pool) th.join();
    size_t bad = 0;
    for (size_t m : mismatches) bad += m;
    if (bad) {
      std::fprintf(stderr, "tokenizer_tool: %zu encodings differ when run from %d threads\n", bad, threads);
      return 1;
    }
  }
  return 0;
}

int run_bench(const Tokenizer& tok, const std::string& text_path, int repeat) {
  std::string text = read_all(text_path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    size_t end = nl == std::string::npos ? text.size() : nl;
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  using clock = std::chrono::steady_clock;
  double mb = static_cast<double>(text.size()) / 1e6;
  size_t n_ids = 0;
  double best_lines = 1e9, best_whole = 1e9;
  for (int r = 0; r < repeat; ++r) {
    auto t0 = clock::now();
    size_t ids = 0;
    for (const auto& l : lines) ids += tok.encode(l, false).size();
    auto t1 = clock::now();
    size_t whole = tok.encode(text, false).size();
    auto t2 = clock::now();
    best_lines = std::min(best_lines, std::chrono::duration<double>(t1 - t0).count());
    best_whole = std::min(best_whole, std::chrono::duration<double>(t2 - t1).count());
    n_ids = ids + whole;
  }
  std::printf("%s: %.2f MB, %zu lines; per line %.1f MB/s; whole text %.1f MB/s (%zu ids in all)\n",
              tok.name().c_str(), mb, lines.size(), mb / best_lines, mb / best_whole, n_ids);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 4 && args[0] == "encode") {
      int threads = args.size() >= 6 && args[4] == "--threads" ? std::stoi(args[5]) : 1;
      auto tok = open_tokenizer(args[1]);
      return run_encode(*tok, args[2], args[3], threads);
    }
    if (args.size() >= 3 && args[0] == "bench") {
      int repeat = args.size() >= 5 && args[3] == "--repeat" ? std::stoi(args[4]) : 3;
      auto tok = open_tokenizer(args[1]);
      return run_bench(*tok, args[2], repeat);
    }
    if (args.size() == 2 && args[0] == "info") {
      auto tok = open_tokenizer(args[1]);
      std::printf("%s vocab_size=%lld bos=%d eos=%d\n", tok->name().c_str(),
                  static_cast<long long>(tok->vocab_size()), tok->bos_id(), tok->eos_id());
      return 0;
    }
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  }
  std::fprintf(stderr, "usage: tokenizer_tool encode|bench|info ... (see the source)\n");
  return 2;
}
