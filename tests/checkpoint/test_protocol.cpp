// The directory protocol: a save interrupted at any point leaves the previous checkpoint and
// `latest` intact and is never picked by --resume auto; damaged checkpoints are named and skipped;
// a full disk fails cleanly; retention keeps the newest and the resumed one.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "runtime/base/error.h"
#include "runtime/checkpoint/distributed.h"
#include "runtime/checkpoint/file_ops.h"
#include "runtime/checkpoint/protocol.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/shard_writer.h"
#include "runtime/comm/communicator.h"
#include "tests/checkpoint/synthetic.h"

using namespace fm::checkpoint;
using namespace fm::checkpoint::testing;
namespace fs = std::filesystem;
using fm::runtime::ResumeMode;

namespace {

std::string latest_tag(const std::string& root) { return read_latest(root).tag; }

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

bool has_leftover(const std::string& root) {
  for (const auto& n : names_in(root))
    if (n.find(".tmp-") != std::string::npos) return true;
  return false;
}

// --resume as the single rank of a (1,1,0) layout.
ResumeResult resume(const std::string& output_dir, const fm::model::LlamaConfig& c, ResumeMode mode,
                    const std::string& path = {}) {
  auto world = fm::comm::make_single_communicator();
  const auto layout = fm::model::make_param_layout(c, 0, int(c.num_layers_total()));
  ResumeRequest req;
  req.mode = mode;
  req.path = path;
  req.output_dir = output_dir;
  req.model = &c;
  req.layout = &layout;
  req.state_begin = 0;
  req.state_end = layout.total;
  return open_for_resume(*world, req);
}

int64_t resumed_step(const ResumeResult& r) { return r.reader ? r.reader->state().global_step : -1; }

void flip_byte(const std::string& path, int64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = char(c ^ 0x5a);
  f.seekp(offset);
  f.write(&c, 1);
}

std::string shard_path(const std::string& ckpt, size_t i) {
  CheckpointReader r(ckpt);
  return r.file_path(i);
}

template <typename F>
fm::InputError expect_input_error(F&& f) {
  try {
    f();
  } catch (const fm::InputError& e) {
    return e;
  }
  FAIL("expected an InputError");
  return fm::InputError("", "");
}

}  // namespace

TEST_CASE("a save interrupted at each step leaves the previous checkpoint and latest intact") {
  const auto c = make_model({.tied = true});
  struct Case {
    const char* point;   // where the saving process ends
    bool step2_visible;  // global_step2 exists afterwards
    int64_t auto_step;   // what --resume auto picks
  };
  for (const Case& k :
       {Case{"mid-shards", false, 1}, Case{"manifest_written", false, 1}, Case{"directory_renamed", true, 1},
        Case{"latest_written", true, 2}, Case{"retention_done", true, 2}}) {
    CAPTURE(k.point);
    TempDir out;
    const std::string root = checkpoints_root(out.path);
    save_simulated(root, c, {2, 2, 1}, 1);
    const int code = run_in_child([&] {
      if (std::string(k.point) == "mid-shards") {
        // One shard complete, a second one half written: what a rank killed mid-write leaves.
        const SaveStart start = begin_save(root, 2, unique_token());
        const auto layout = fm::model::make_param_layout(c, 0, 3);
        std::vector<float> p(size_t(layout.total), 1.0f);
        write_shard(start.tmp_dir, {0, 0, &layout, 0, layout.total, p.data(), p.data(), p.data()});
        std::ofstream(start.tmp_dir + "/" + shard_file_name(1, 0) + ".part") << "partial";
        ::_exit(0);
      }
      CommitOptions opt;
      opt.after_step = [&](std::string_view point) {
        if (point == k.point) ::_exit(0);
      };
      save_simulated(root, c, {2, 2, 1}, 2, true, opt);
      ::_exit(1);  // the hook must have ended the process
    });
    REQUIRE(code == 0);
    CHECK(fs::exists(root + "/global_step2") == k.step2_visible);
    CHECK(latest_tag(root) == (k.auto_step == 2 ? "global_step2" : "global_step1"));
    CheckpointReader(root + "/global_step1").verify_all();
    const ResumeResult r = resume(out.path, c, ResumeMode::Auto);
    CHECK(resumed_step(r) == k.auto_step);
    CHECK(r.skipped.empty());
    CHECK(check_rank(*r.reader, c, {1, 1, 0}, 0, 0, k.auto_step) == "");
    if (k.step2_visible)
      CHECK(resumed_step(resume(out.path, c, ResumeMode::Path, root + "/global_step2")) == 2);

    // The next save removes what the interrupted one left, and becomes the newest.
    save_simulated(root, c, {1, 2, 2}, 3);
    CHECK_FALSE(has_leftover(root));
    CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 3);
  }
}

TEST_CASE("saves killed with SIGKILL at random moments never leave a damaged latest") {
  const auto c = make_model({.hidden = 64, .intermediate = 96, .layers = 4, .vocab = 300});
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  std::mt19937 rng(1234);
  int64_t first = 1;
  for (int round = 0; round < 12; ++round) {
    CAPTURE(round);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      CommitOptions opt;
      opt.max_checkpoints = 2;
      for (int64_t step = first;; ++step) save_simulated(root, c, {2, 2, 1}, step, true, opt);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 60));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFSIGNALED(status));
    const ResumeResult r = resume(out.path, c, ResumeMode::Auto);
    if (!r.reader) {  // killed before the first commit
      CHECK_FALSE(fs::exists(root + "/latest"));
      continue;
    }
    const int64_t step = resumed_step(r);
    // `latest` names it; killed between the first rename and the first `latest`, the newest.
    if (fs::exists(root + "/latest"))
      CHECK(latest_tag(root) == step_tag(step));
    else
      CHECK(list_checkpoints(root).front().step == step);
    CHECK(check_rank(*r.reader, c, {1, 1, 0}, 0, 0, step) == "");
    // Every checkpoint that looks complete is complete.
    for (const auto& e : list_checkpoints(root)) CheckpointReader(e.path).verify_all();
    first = step + 1;
  }
}

TEST_CASE("damaged checkpoints: each a clear error naming the file; auto falls back past them") {
  const auto c = make_model();
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  for (int64_t s : {1, 2, 3}) save_simulated(root, c, {2, 2, 1}, s);
  const std::string s3 = root + "/global_step3";

  SUBCASE("a flipped byte") {
    const std::string shard = shard_path(s3, 2);
    flip_byte(shard, int64_t(fs::file_size(shard)) - 10);
    auto e = expect_input_error([&] { CheckpointReader(s3).verify_all(); });
    CHECK(e.where() == shard);
    CHECK(e.problem().find("checksum mismatch") != std::string::npos);
    e = expect_input_error([&] { resume(out.path, c, ResumeMode::Path, s3); });
    CHECK(e.where() == shard);
    const ResumeResult r = resume(out.path, c, ResumeMode::Auto);
    CHECK(resumed_step(r) == 2);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].find(shard) != std::string::npos);
    CHECK(r.skipped[0].find("checksum mismatch") != std::string::npos);
  }
  SUBCASE("a flipped byte in a shard's header") {
    const std::string shard = shard_path(s3, 0);
    flip_byte(shard, 20);
    CHECK(expect_input_error([&] { resume(out.path, c, ResumeMode::Path, s3); }).where() == shard);
    CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 2);
  }
  SUBCASE("a truncated shard") {
    const std::string shard = shard_path(s3, 1);
    fs::resize_file(shard, fs::file_size(shard) / 2);
    const auto e = expect_input_error([&] { CheckpointReader r(s3); });
    CHECK(e.where() == shard);
    CHECK(e.problem().find("truncated") != std::string::npos);
    const ResumeResult r = resume(out.path, c, ResumeMode::Auto);
    CHECK(resumed_step(r) == 2);
    REQUIRE(r.skipped.size() == 1);
    CHECK(r.skipped[0].find(shard) != std::string::npos);
  }
  SUBCASE("a missing shard") {
    const std::string shard = shard_path(s3, 3);
    fs::remove(shard);
    const auto e = expect_input_error([&] { resume(out.path, c, ResumeMode::Path, s3); });
    CHECK(e.where() == shard);
    CHECK(e.problem().find("missing") != std::string::npos);
    CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 2);
  }
  SUBCASE("a damaged manifest") {
    const std::string manifest = s3 + "/manifest.json";
    std::string text = read_file(manifest);
    text.resize(text.size() / 2);
    std::ofstream(manifest, std::ios::trunc) << text;
    const auto e = expect_input_error([&] { resume(out.path, c, ResumeMode::Path, s3); });
    CHECK(e.where().rfind(manifest + ":", 0) == 0);  // file:line:col
    CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 2);
  }
  SUBCASE("a manifest lacking a shard's entry") {
    const std::string manifest = s3 + "/manifest.json";
    Manifest m = read_manifest(s3);
    m.files.pop_back();
    std::ofstream(manifest, std::ios::trunc) << manifest_to_json(m);
    const auto e = expect_input_error([&] { CheckpointReader r(s3); });
    CHECK(e.where() == manifest);
    CHECK(e.problem().find("in none of the listed shard files") != std::string::npos);
  }
  SUBCASE("a checkpoint of another model is an error, with auto too") {
    const auto other = make_model({.hidden = 48, .heads = 6});
    for (ResumeMode mode : {ResumeMode::Auto, ResumeMode::Path}) {
      const auto e = expect_input_error([&] { resume(out.path, other, mode, s3); });
      CHECK(e.where() == s3 + "/manifest.json: model_config.hidden_size");
      CHECK(e.problem().find("32") != std::string::npos);
      CHECK(e.problem().find("48") != std::string::npos);
    }
  }
  SUBCASE("every checkpoint damaged: auto refuses to start over silently") {
    for (int64_t s : {1, 2, 3}) fs::remove(shard_path(root + "/global_step" + std::to_string(s), 0));
    const auto e = expect_input_error([&] { resume(out.path, c, ResumeMode::Auto); });
    CHECK(e.where() == root);
    CHECK(e.problem().find("none of the 3") != std::string::npos);
    CHECK(resumed_step(resume(out.path, c, ResumeMode::None)) == -1);
  }
  SUBCASE("latest naming a missing checkpoint: by step number") {
    fs::remove_all(s3);
    const ResumeCandidates cand = resume_candidates(root);
    REQUIRE(cand.notes.size() == 1);
    CHECK(cand.notes[0].find("global_step3, which does not exist") != std::string::npos);
    CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 2);
  }
}

TEST_CASE("resume with nothing to resume, and --resume none") {
  const auto c = make_model();
  TempDir out;
  CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == -1);
  save_simulated(checkpoints_root(out.path), c, {1, 1, 0}, 1);
  CHECK(resumed_step(resume(out.path, c, ResumeMode::None)) == -1);
  const auto e = expect_input_error([&] { resume(out.path, c, ResumeMode::Path, out.path + "/nope"); });
  CHECK(e.where() == "--resume");
}

TEST_CASE("a save that runs out of space fails cleanly, naming the file") {
  const auto c = make_model({.hidden = 64, .intermediate = 96, .layers = 2, .vocab = 300});
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  save_simulated(root, c, {1, 1, 0}, 1);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const int code = run_in_child([&] {
    ::close(fds[0]);
    // Files larger than 64 KiB cannot be written: write() fails with EFBIG, as on a full disk.
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{65536, 65536};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    auto world = fm::comm::make_single_communicator();
    const auto layout = fm::model::make_param_layout(c, 0, int(c.num_layers_total()));
    std::vector<float> p(size_t(layout.total), 0.5f);
    SaveRequest req;
    req.output_dir = out.path;
    req.step = 2;
    req.shard = {0, 0, &layout, 0, layout.total, p.data(), p.data(), p.data()};
    req.model = &c;
    req.topology = topology_of(c, {1, 1, 0});
    try {
      save_checkpoint(*world, req);
    } catch (const fm::RuntimeFault& e) {
      const std::string msg = e.what();
      (void)!::write(fds[1], msg.data(), msg.size());
      ::_exit(0);
    }
    ::_exit(1);
  });
  ::close(fds[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) msg.append(buf, size_t(n));
  ::close(fds[0]);
  REQUIRE(code == 0);
  CHECK(msg.find("checkpoint of step 2 not saved") != std::string::npos);
  CHECK(msg.find(shard_file_name(0, 0)) != std::string::npos);
  CHECK(msg.find("File too large") != std::string::npos);
  CHECK(msg.find("the previous checkpoints and `latest` are unchanged") != std::string::npos);
  CHECK(latest_tag(root) == "global_step1");
  CHECK_FALSE(fs::exists(root + "/global_step2"));
  CHECK_FALSE(has_leftover(root));
  CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 1);
}

TEST_CASE("max_checkpoints keeps the newest and never the one resumed from") {
  const auto c = make_model();
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  CommitOptions opt;
  opt.max_checkpoints = 2;
  for (int64_t s = 1; s <= 3; ++s) save_simulated(root, c, {1, 2, 1}, s, true, opt);
  CHECK(names_in(root) == std::vector<std::string>{"global_step2", "global_step3", "latest"});
  opt.keep = {root + "/global_step2"};
  for (int64_t s = 4; s <= 5; ++s) save_simulated(root, c, {1, 2, 1}, s, true, opt);
  CHECK(names_in(root) == std::vector<std::string>{"global_step2", "global_step4", "global_step5", "latest"});
  // 0 keeps everything.
  save_simulated(root, c, {1, 2, 1}, 6);
  CHECK(list_checkpoints(root).size() == 4);
  // A directory without a manifest is not ours to remove.
  fs::create_directory(root + "/global_step0");
  opt.keep.clear();
  opt.max_checkpoints = 1;
  const CommitResult r = save_simulated(root, c, {1, 2, 1}, 7, true, opt);
  CHECK(r.removed.size() == 4);
  CHECK(names_in(root) == std::vector<std::string>{"global_step0", "global_step7", "latest"});
}

TEST_CASE("a run resumed from an older checkpoint: newer ones are reported, not used") {
  const auto c = make_model();
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  for (int64_t s : {10, 20}) save_simulated(root, c, {1, 1, 0}, s);
  write_file_atomic(root + "/latest", "global_step10\n");  // as if the save of 20 was cut before `latest`
  const ResumeCandidates cand = resume_candidates(root);
  REQUIRE(cand.order.size() == 1);
  CHECK(cand.order[0].tag == "global_step10");
  REQUIRE(cand.notes.size() == 1);
  CHECK(cand.notes[0].find("global_step20 is newer than") != std::string::npos);
  CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 10);
  // Saving the same step again replaces it.
  save_simulated(root, c, {2, 1, 0}, 20);
  CheckpointReader r(root + "/global_step20");
  CHECK(r.manifest().topology.pipe == 2);
  CHECK_FALSE(has_leftover(root));
  CHECK(resumed_step(resume(out.path, c, ResumeMode::Auto)) == 20);
}

TEST_CASE("resolving what users name as a checkpoint") {
  const auto c = make_model();
  TempDir out;
  const std::string root = checkpoints_root(out.path);
  save_simulated(root, c, {1, 1, 0}, 4);
  save_simulated(root, c, {1, 1, 0}, 8);
  const std::string s8 = root + "/global_step8";
  CHECK(resolve_checkpoint_dir(out.path, "--init_ckpt") == s8);
  CHECK(resolve_checkpoint_dir(root, "--init_ckpt") == s8);
  CHECK(resolve_checkpoint_dir(root + "/global_step4", "--init_ckpt") == root + "/global_step4");
  CHECK(is_fm_checkpoint(out.path));
  CHECK(is_fm_checkpoint(s8));
  CHECK_FALSE(is_fm_checkpoint(out.path + "/nope"));
  fs::create_directory(root + "/global_step9.tmp-abc");
  auto e = expect_input_error([&] { resolve_checkpoint_dir(root + "/global_step9.tmp-abc", "--resume"); });
  CHECK(e.where() == "--resume");
  CHECK(e.hint().find("incomplete") != std::string::npos);
  fs::create_directory(out.path + "/hf");
  CHECK_FALSE(is_fm_checkpoint(out.path + "/hf"));
  e = expect_input_error([&] { resolve_checkpoint_dir(out.path + "/hf", "--init_ckpt"); });
  CHECK(e.problem().find("not an fmengine checkpoint") != std::string::npos);
}
