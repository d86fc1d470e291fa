// Checkpoint save and load throughput of a ~110M-parameter model (parameters + Adam moments,
// 12 bytes per parameter) through fm_checkpoint, against the disk's raw sequential write rate
// (dd conv=fsync of the same byte count) measured in the same run.
//
//   bench_checkpoint [--dir DIR] [--reps N] [--hidden C --layers L --ffn F --vocab V]
//
// Save: one process writes the 4 shards of a (pipeline 2, data 2, ZeRO 1) layout in turn and
// commits (fsyncs included). Load: the files are dropped from the page cache
// (posix_fadvise DONTNEED), then one process opens the checkpoint as a single rank (1, 1), verifies
// every file's checksum and reads all parameters and both moments ("cold"); then the same with the
// files cached ("warm"), and warm without the checksums. Also: XXH64 over memory alone.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "model/llama_config.h"
#include "model/param_layout.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/file_ops.h"
#include "runtime/checkpoint/protocol.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/shard_writer.h"
#include "runtime/checkpoint/xxhash64.h"

namespace {
namespace fs = std::filesystem;
using namespace fm::checkpoint;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// "X MB/s (median of N: T s; best Y MB/s)"
std::string rate(double mb, const std::vector<double>& s) {
  return fmt::format("{:7.0f} MB/s  (median {:.2f} s of {}; best {:.0f} MB/s)", mb / median(s), median(s),
                     s.size(), mb / *std::min_element(s.begin(), s.end()));
}

void drop_cache(const std::string& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

double shell_seconds(const std::string& cmd) {
  const auto t0 = Clock::now();
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "failed: %s\n", cmd.c_str());
    std::exit(1);
  }
  return since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = fs::temp_directory_path().string();
  int reps = 3;
  fm::model::LlamaConfig c;
  c.hidden_size = 768;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 12;
  c.intermediate_size = 2048;
  c.vocab_size = 32000;
  c.tie_word_embeddings = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--dir")
      dir = v;
    else if (k == "--reps")
      reps = std::stoi(v);
    else if (k == "--hidden")
      c.hidden_size = std::stoll(v);
    else if (k == "--layers")
      c.num_hidden_layers = std::stoll(v);
    else if (k == "--ffn")
      c.intermediate_size = std::stoll(v);
    else if (k == "--vocab")
      c.vocab_size = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  const int L2 = int(c.num_layers_total());
  const std::string work = dir + "/fm-bench-ckpt-" + std::to_string(::getpid());
  fs::create_directories(work);
  const std::string root = work + "/checkpoints";

  // (2, 2, ZeRO 1): stage cut in the middle of the decoder layers.
  const std::vector<int> cuts = {0, L2 / 2, L2};
  std::vector<fm::model::ParamLayout> stages;
  int64_t params = 0;
  for (int s = 0; s < 2; ++s) stages.push_back(fm::model::make_param_layout(c, cuts[s], cuts[s + 1]));
  params = full_layout(c).total;
  std::vector<std::vector<float>> buffers;  // per stage: params | m | v of the whole stage
  for (const auto& l : stages) {
    std::vector<float> b(size_t(3 * l.total));
    for (size_t i = 0; i < b.size(); ++i) b[i] = float(i % 9973) * 1e-4f;
    buffers.push_back(std::move(b));
  }
  fmt::print(
      "model: {} parameters (hidden {}, layers {}, ffn {}, vocab {}, tied) -> checkpoint of {:.1f} MB\n",
      params, c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size,
      12.0 * double(params) / 1e6);
  fmt::print("directory: {}\n", work);

  std::vector<double> save_s, commit_s, cold_s, warm_s, plain_s, dd_s, ddr_s;
  int64_t bytes = 0;
  std::string path;
  for (int rep = 0; rep < reps; ++rep) {
    // Save.
    auto t0 = Clock::now();
    const SaveStart start = begin_save(root, rep + 1, unique_token());
    CommitInput in;
    in.tmp_dir = start.tmp_dir;
    in.step = rep + 1;
    in.model = &c;
    in.topology = {2, 2, 1, 4, cuts};
    bytes = 0;
    for (int s = 0; s < 2; ++s) {
      const auto& l = stages[size_t(s)];
      const float* b = buffers[size_t(s)].data();
      for (int d = 0; d < 2; ++d) {
        const ShardRange r = shard_range(1, 2, d, l.total);
        ShardData data{
            s, d, &l, r.begin, r.end, b + r.begin, b + l.total + r.begin, b + 2 * l.total + r.begin};
        // The moments of the padding would come from the optimizer's partition buffer; the
        // writer never reads past layout.total.
        in.shards.push_back(write_shard(start.tmp_dir, data));
        bytes += in.shards.back().bytes;
      }
    }
    const auto tc = Clock::now();
    path = commit_save(in).path;
    commit_s.push_back(since(tc));
    save_s.push_back(since(t0));
    // Retention is not timed: removing the previous checkpoint's files is the file system's cost.
    for (const auto& e : list_checkpoints(root))
      if (e.path != path) fs::remove_all(e.path);

    // Raw sequential write of the same byte count.
    const std::string raw = work + "/dd.bin";
    dd_s.push_back(shell_seconds(fmt::format("dd if=/dev/zero of={} bs=8M count={} conv=fsync status=none",
                                             raw, (bytes + (8 << 20) - 1) / (8 << 20))));
    drop_cache(work);
    ddr_s.push_back(shell_seconds(fmt::format("dd if={} of=/dev/null bs=8M iflag=direct status=none", raw)));
    fs::remove(raw);

    // Load as one rank of (1, 1): cold, warm, warm without checksums.
    const auto full = full_layout(c);
    std::vector<float> p(size_t(full.total)), m(p.size()), v(p.size());
    for (int pass = 0; pass < 3; ++pass) {
      if (pass == 0) drop_cache(work);
      t0 = Clock::now();
      CheckpointReader reader(path);
      if (pass < 2) reader.verify(reader.files_for(full, 0, full.total));
      load_rank_state(reader, full, 0, full.total, p.data(), m.data(), v.data());
      (pass == 0 ? cold_s : pass == 1 ? warm_s : plain_s).push_back(since(t0));
    }
    fmt::print(
        "rep {}: save {:.2f} s (commit {:.2f} s) | dd write {:.2f} s | dd read {:.2f} s | load cold {:.2f} s "
        "| "
        "warm {:.2f} s | warm unverified {:.2f} s\n",
        rep + 1, save_s.back(), commit_s.back(), dd_s.back(), ddr_s.back(), cold_s.back(), warm_s.back(),
        plain_s.back());
  }

  // The checksum alone, over memory.
  std::vector<unsigned char> mem(size_t(1) << 30, 7);
  auto t0 = Clock::now();
  volatile uint64_t h = xxh64(mem.data(), mem.size());
  (void)h;
  const double hash_s = since(t0);

  const double mb = double(bytes) / 1e6;
  // The load reads parameters once and the moments once: the same bytes as the checkpoint.
  fmt::print("\ncheckpoint bytes: {:.1f} MB in 4 shards\n", mb);
  fmt::print("save (write + XXH64 + fsync + commit):      {}\n", rate(mb, save_s));
  fmt::print("disk raw sequential write (dd conv=fsync):   {}\n", rate(mb, dd_s));
  fmt::print("load, cold cache (verify XXH64 + read):      {}\n", rate(mb, cold_s));
  fmt::print("disk raw sequential read (dd iflag=direct):  {}\n", rate(mb, ddr_s));
  fmt::print("load, warm cache (verify XXH64 + read):      {}\n", rate(mb, warm_s));
  fmt::print("load, warm cache, checksums not verified:    {}\n", rate(mb, plain_s));
  fmt::print("XXH64 over memory (one core):                {:7.0f} MB/s\n",
             double(mem.size()) / 1e6 / hash_s);
  fs::remove_all(work);
  return 0;
}
