#include <doctest/doctest.h>

#include "runtime/base/error.h"
#include "runtime/config/train_args.h"

namespace fm::runtime {
namespace {

TrainArgs parse(std::vector<std::string> args) { return parse_train_args(args); }

InputError error_of(std::vector<std::string> args) {
  try {
    parse_train_args(args);
  } catch (const InputError& e) {
    return e;
  }
  FAIL("accepted: " << args.size() << " args");
  return InputError("", "");
}

TEST_CASE("train_args: defaults") {
  TrainArgs a = parse({});
  CHECK(a.deepspeed_config.empty());
  CHECK(a.data_path.empty());
  CHECK(a.max_seq_len == 128);
  CHECK(a.train_steps == 100);
  CHECK(a.eval_steps == 0);
  CHECK(a.eval_iters == 10);
  CHECK(a.save_steps == 0);
  CHECK(a.log_steps == 1);
  CHECK(a.output_dir == "./output");
  CHECK(a.seed == 3407);
  CHECK(a.pipe_parallel_size == 1);
  CHECK(a.model_parallel_size == 1);
  CHECK(a.num_workers == 1);
  CHECK(a.split == "100,0,0");
  CHECK(a.split_weights == std::array<double, 3>{100, 0, 0});
  CHECK(a.resume == ResumeMode::Auto);
  CHECK(a.use_flash_attn);
  CHECK(a.use_fused_ops);
  CHECK_FALSE(a.dry_run);
  CHECK(a.comm_timeout == 300);
  CHECK(a.local_rank == -1);
  CHECK_FALSE(a.help);
}

TEST_CASE("train_args: value forms and dash aliases") {
  TrainArgs a = parse({"--deepspeed_config", "ds.json", "--model-config=m.json", "--train_steps=7", "--max-seq-len",
                       "256", "--seed", "1", "--output_dir", "out", "--pipe_parallel_size", "4", "--tokenizer",
                       "tok.json", "--init_ckpt", "ck", "--log_steps", "5", "--save_steps", "50", "--comm-timeout",
                       "60", "--num_workers", "0"});
  CHECK(a.deepspeed_config == "ds.json");
  CHECK(a.model_config == "m.json");
  CHECK(a.train_steps == 7);
  CHECK(a.max_seq_len == 256);
  CHECK(a.seed == 1);
  CHECK(a.output_dir == "out");
  CHECK(a.pipe_parallel_size == 4);
  CHECK(a.tokenizer == "tok.json");
  CHECK(a.init_ckpt == "ck");
  CHECK(a.log_steps == 5);
  CHECK(a.save_steps == 50);
  CHECK(a.comm_timeout == 60);
  CHECK(a.num_workers == 0);

  const char* argv[] = {"fmtrain", "--local_rank=3", "--rank", "5", "--dry_run"};
  TrainArgs b = parse_train_args(5, argv);
  CHECK(b.local_rank == 3);
  CHECK(b.rank == 5);
  CHECK(b.dry_run);
  CHECK(parse({"--local-rank=2"}).local_rank == 2);  // torchrun's newer spelling
  CHECK(parse({"-h"}).help);
  CHECK(parse({"--help"}).help);
}

TEST_CASE("train_args: booleans") {
  CHECK(parse({"--use_flash_attn"}).use_flash_attn);
  CHECK_FALSE(parse({"--use_flash_attn", "false"}).use_flash_attn);
  CHECK_FALSE(parse({"--use_flash_attn", "0"}).use_flash_attn);
  CHECK(parse({"--use_flash_attn", "1"}).use_flash_attn);
  CHECK_FALSE(parse({"--use-fused-ops=false"}).use_fused_ops);
  TrainArgs a = parse({"--dry_run", "--train_steps", "3"});  // a bool followed by a flag stays true
  CHECK(a.dry_run);
  CHECK(a.train_steps == 3);
  InputError e = error_of({"--use_flash_attn", "yes"});
  CHECK(e.where() == "--use_flash_attn");
  CHECK(e.problem() == "expected true, false, 1 or 0, got 'yes'");
  CHECK(error_of({"--dry_run=True"}).where() == "--dry_run");
}

TEST_CASE("train_args: data_path takes values up to the next flag") {
  TrainArgs one = parse({"--data_path", "data/a", "--train_steps", "2"});
  REQUIRE(one.data_blend.size() == 1);
  CHECK(one.data_blend[0].path == "data/a");
  CHECK(one.data_blend[0].weight == 1.0);
  TrainArgs blend = parse({"--data_path", "0.3", "a", "0.7", "b", "--seed", "2"});
  CHECK(blend.data_path == std::vector<std::string>{"0.3", "a", "0.7", "b"});
  REQUIRE(blend.data_blend.size() == 2);
  CHECK(blend.data_blend[0].weight == 0.3);
  CHECK(blend.data_blend[1].path == "b");
  CHECK(blend.seed == 2);
  CHECK(parse({"--data_path=0.5", "x", "0.5", "y"}).data_blend.size() == 2);

  CHECK(error_of({"--data_path", "a", "b"}).hint().find("weight/path pairs") != std::string::npos);
  CHECK(error_of({"--data_path", "0.5", "a", "b"}).problem().find("weight/path pairs") != std::string::npos);
  CHECK(error_of({"--data_path", "a", "0.5", "b", "0.5"}).problem() == "'a' is not a weight (a number)");
  CHECK(error_of({"--data_path", "-1", "a", "2", "b"}).problem() == "weights must be >= 0, got -1");
  CHECK(error_of({"--data_path", "0", "a", "0", "b"}).problem() == "the blend weights sum to 0");
  CHECK(error_of({"--data_path"}).problem() == "missing value");
}

TEST_CASE("train_args: split and resume") {
  TrainArgs a = parse({"--split", "969,30,1", "--eval_steps", "100"});
  CHECK(a.split_weights == std::array<double, 3>{969, 30, 1});
  CHECK(a.eval_steps == 100);
  CHECK(parse({"--split=98/2/0"}).split_weights == std::array<double, 3>{98, 2, 0});
  CHECK(error_of({"--split", "969,30"}).problem() == "expected 3 weights, got 2 in '969,30'");
  CHECK(error_of({"--split", "1,x,1"}).problem() == "'x' is not a number");
  CHECK(error_of({"--split", "1,-1,1"}).problem() == "weights must be >= 0, got -1");
  CHECK(error_of({"--split", "0,0,0"}).problem() == "the weights sum to 0");
  InputError e = error_of({"--eval_steps", "10"});
  CHECK(e.where() == "--eval_steps");
  CHECK(e.hint().find("--split 969,30,1") != std::string::npos);

  CHECK(parse({"--resume", "none"}).resume == ResumeMode::None);
  CHECK(parse({"--resume", "auto"}).resume == ResumeMode::Auto);
  TrainArgs p = parse({"--resume", "out/global_step10"});
  CHECK(p.resume == ResumeMode::Path);
  CHECK(p.resume_path == "out/global_step10");
}

TEST_CASE("train_args: errors name the flag") {
  InputError unknown = error_of({"--train_step", "10"});
  CHECK(unknown.where() == "--train_step");
  CHECK(unknown.problem() == "unknown flag");
  CHECK(unknown.hint() == "did you mean --train_steps?");
  CHECK(error_of({"--deepspeed-confg=x"}).hint() == "did you mean --deepspeed_config?");

  InputError malformed = error_of({"--train_steps", "10x"});
  CHECK(malformed.where() == "--train_steps");
  CHECK(malformed.problem() == "expected an integer, got '10x'");
  CHECK(error_of({"--train-steps=1.5"}).where() == "--train-steps");  // named as spelled
  CHECK(error_of({"--train_steps", "-5"}).problem() == "must be >= 1, got -5");
  CHECK(error_of({"--save_steps", "-1"}).problem() == "must be >= 0, got -1");
  CHECK(error_of({"--pipe_parallel_size", "0"}).where() == "--pipe_parallel_size");
  CHECK(error_of({"--pipe_parallel_size", "99999999999"}).problem().find("expected an integer") != std::string::npos);

  InputError missing = error_of({"--output_dir"});
  CHECK(missing.where() == "--output_dir");
  CHECK(missing.problem() == "missing value");
  CHECK(error_of({"--output_dir", "--seed", "1"}).problem() == "missing value");
  CHECK(error_of({"--output_dir="}).problem() == "empty value");

  InputError tp = error_of({"--model_parallel_size", "2"});
  CHECK(tp.where() == "--model_parallel_size");
  CHECK(tp.problem() == "tensor parallelism is not implemented; use --model_parallel_size 1");
  CHECK(parse({"--model_parallel_size", "1"}).model_parallel_size == 1);

  CHECK(error_of({"--seed", "1", "--seed", "2"}).problem() == "given more than once");
  CHECK(error_of({"--seed", "1", "--seed=2"}).where() == "--seed");
  InputError stray = error_of({"data.bin"});
  CHECK(stray.where() == "data.bin");
  CHECK(stray.problem().find("unexpected argument") != std::string::npos);
}

TEST_CASE("train_args: help and summary list every flag with its default") {
  std::string help = train_args_help();
  for (const char* flag :
       {"--deepspeed_config", "--model_config", "--init_ckpt", "--data_path", "--tokenizer", "--max_seq_len",
        "--train_steps", "--eval_steps", "--eval_iters", "--save_steps", "--log_steps", "--output_dir", "--seed",
        "--pipe_parallel_size", "--model_parallel_size", "--num_workers", "--split", "--resume", "--use_flash_attn",
        "--use_fused_ops", "--dry_run", "--comm_timeout", "--local_rank", "--rank", "--help"})
    CHECK_MESSAGE(help.find(flag) != std::string::npos, flag);
  CHECK(help.find("(default: 3407)") != std::string::npos);
  CHECK(help.find("(default: 100,0,0)") != std::string::npos);
  std::string summary = train_args_summary(parse({"--train_steps", "9", "--data_path", "0.5", "a", "0.5", "b"}));
  CHECK(summary.find("--train_steps 9\n") != std::string::npos);
  CHECK(summary.find("--data_path 0.5 a 0.5 b\n") != std::string::npos);
}

}  // namespace
}  // namespace fm::runtime
