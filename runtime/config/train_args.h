// fmtrain's command-line flags: FMEngine's cli/train.py flags, parsed strictly from one table.
//
// Forms: `--flag value`, `--flag=value`; `--flag-with-dashes` is the same flag as
// `--flag_with_dashes`. Booleans: `--use_flash_attn` alone means true; a following
// true/false/1/0 is taken as its value. `--data_path` takes one or more values up to the next flag
// (a path, or Megatron-style weight/path pairs). `--help`/`-h` sets `help`.
// Errors are InputError with `where` = the flag as the user spelled it (e.g. "--train_steps"):
// unknown flag (with the nearest one), missing value, malformed or out-of-range number, a flag
// given twice, a stray positional argument.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace fm::runtime {

enum class ResumeMode { None, Auto, Path };

struct DataSource {
  double weight = 1.0;
  std::string path;
};

struct TrainArgs {
  std::string deepspeed_config;        // "" = the built-in config (default_ds_config())
  std::string model_config;            // HF config.json; "" = from init_ckpt or the built-in tiny model
  std::string init_ckpt;               // checkpoint to initialise from; "" = random init
  std::vector<std::string> data_path;  // as given
  std::vector<DataSource> data_blend;  // parsed data_path: one path (weight 1) or weight/path pairs
  std::string tokenizer;               // tokenizer.json; "" = from init_ckpt / the data
  int64_t max_seq_len = 128;
  int64_t train_steps = 100;
  int64_t eval_steps = 0;  // 0 = never
  int64_t eval_iters = 10;
  int64_t save_steps = 0;  // 0 = only at the end
  int64_t max_checkpoints = 0;  // keep the N newest checkpoints; 0 = all
  int64_t log_steps = 1;
  std::string output_dir = "./output";
  int64_t seed = 3407;
  int pipe_parallel_size = 1;
  int model_parallel_size = 1;  // only 1: tensor parallelism is not implemented
  int num_workers = 1;
  std::string split = "100,0,0";               // as given
  std::array<double, 3> split_weights{100, 0, 0};  // train, validation, test
  ResumeMode resume = ResumeMode::Auto;
  std::string resume_path;  // ResumeMode::Path
  bool use_flash_attn = true;
  bool use_fused_ops = true;
  bool dry_run = false;
  int64_t comm_timeout = 300;  // seconds
  std::string comm_backend = "auto";  // auto | mpi | gloo
  std::string device = "cpu";         // cpu | cuda
  int local_rank = -1;         // accepted from launchers, otherwise unused; -1 = not given
  int rank = -1;
  bool help = false;
};

// argv[0] is the program name and is skipped.
TrainArgs parse_train_args(int argc, const char* const* argv);
// The flags alone (no program name).
TrainArgs parse_train_args(const std::vector<std::string>& args);

// `fmtrain --help` text: every flag with its value form, default and meaning.
std::string train_args_help();
// The same as a markdown table (embedded in docs/config.md).
std::string train_args_reference_markdown();
// "--flag value" lines of every flag's effective value, for the start-up log.
std::string train_args_summary(const TrainArgs& args);

const char* to_string(ResumeMode m);

}  // namespace fm::runtime
