#include "runtime/config/train_args.h"

#include <fmt/format.h>

#include <functional>
#include <limits>
#include <optional>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::runtime {

namespace {

enum class Arity { One, Many, Bool };

// One flag: how it is written, how its value is checked and stored, how its value is shown.
struct Flag {
  std::string name;     // underscore spelling, without "--"
  std::string metavar;  // value form in --help ("" for booleans)
  Arity arity;
  std::string help;
  // `flag` is the spelling the user wrote (for messages).
  std::function<void(TrainArgs&, const std::string& flag, const std::vector<std::string>& values)> set;
  std::function<std::string(const TrainArgs&)> show;
};

std::string quote(const std::string& s) { return "'" + s + "'"; }

template <class Int>
Flag int_flag(std::string name, Int TrainArgs::*member, int64_t min, std::string help) {
  return {std::move(name), "N", Arity::One, std::move(help),
          [member, min](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
            long long x;
            if (!parse_int64(v[0], x) || x < std::numeric_limits<Int>::min() || x > std::numeric_limits<Int>::max())
              throw InputError(flag, "expected an integer, got " + quote(v[0]), "e.g. " + flag + " 100");
            if (x < min) throw InputError(flag, fmt::format("must be >= {}, got {}", min, x));
            a.*member = static_cast<Int>(x);
          },
          [member](const TrainArgs& a) { return std::to_string(a.*member); }};
}

Flag string_flag(std::string name, std::string metavar, std::string TrainArgs::*member, std::string help,
                 std::string shown_when_empty) {
  return {std::move(name), std::move(metavar), Arity::One, std::move(help),
          [member](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
            if (v[0].empty()) throw InputError(flag, "empty value", "give a value after " + flag);
            a.*member = v[0];
          },
          [member, shown_when_empty](const TrainArgs& a) {
            return (a.*member).empty() ? shown_when_empty : a.*member;
          }};
}

Flag bool_flag(std::string name, bool TrainArgs::*member, std::string help) {
  return {std::move(name), "", Arity::Bool, std::move(help),
          [member](TrainArgs& a, const std::string&, const std::vector<std::string>& v) {
            a.*member = v[0] == "true" || v[0] == "1";
          },
          [member](const TrainArgs& a) { return std::string(a.*member ? "true" : "false"); }};
}

void parse_split(TrainArgs& a, const std::string& flag, const std::string& text) {
  char sep = text.find('/') != std::string::npos ? '/' : ',';
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  const std::string hint = "three non-negative weights for train, validation and test, e.g. " + flag + " 969,30,1";
  if (parts.size() != 3)
    throw InputError(flag, fmt::format("expected 3 weights, got {} in {}", parts.size(), quote(text)), hint);
  double sum = 0;
  for (size_t i = 0; i < 3; ++i) {
    double w;
    if (!parse_double(parts[i], w)) throw InputError(flag, quote(parts[i]) + " is not a number", hint);
    if (w < 0) throw InputError(flag, "weights must be >= 0, got " + parts[i], hint);
    a.split_weights[i] = w;
    sum += w;
  }
  if (sum <= 0) throw InputError(flag, "the weights sum to 0", hint);
  a.split = text;
}

void parse_data_path(TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
  a.data_path = v;
  a.data_blend.clear();
  if (v.size() == 1) {
    if (v[0].empty()) throw InputError(flag, "empty value", "give a path after " + flag);
    a.data_blend.push_back({1.0, v[0]});
    return;
  }
  const std::string hint = "one path, or weight/path pairs: " + flag + " 0.3 a 0.7 b";
  if (v.size() % 2 != 0)
    throw InputError(flag, fmt::format("{} values: several values must be weight/path pairs", v.size()), hint);
  double sum = 0;
  for (size_t i = 0; i < v.size(); i += 2) {
    double w;
    if (!parse_double(v[i], w)) throw InputError(flag, quote(v[i]) + " is not a weight (a number)", hint);
    if (w < 0) throw InputError(flag, "weights must be >= 0, got " + v[i], hint);
    if (v[i + 1].empty()) throw InputError(flag, "empty path", hint);
    a.data_blend.push_back({w, v[i + 1]});
    sum += w;
  }
  if (sum <= 0) throw InputError(flag, "the blend weights sum to 0", hint);
}

const std::vector<Flag>& flags() {
  static const std::vector<Flag> table = {
      string_flag("deepspeed_config", "PATH", &TrainArgs::deepspeed_config,
                  "DeepSpeed-style JSON config (docs/config.md)", "(built-in fp32 config)"),
      string_flag("model_config", "PATH", &TrainArgs::model_config,
                  "Hugging Face config.json of the model; optional when --init_ckpt holds one", "(none)"),
      string_flag("init_ckpt", "PATH", &TrainArgs::init_ckpt, "checkpoint to initialise the weights from",
                  "(none: random init)"),
      {"data_path", "PATH | W PATH [W PATH ...]", Arity::Many,
       "training data: one path, or Megatron-style weight/path pairs (values up to the next flag)",
       parse_data_path,
       [](const TrainArgs& a) { return a.data_path.empty() ? std::string("(none)") : join(a.data_path, " "); }},
      string_flag("tokenizer", "PATH", &TrainArgs::tokenizer, "tokenizer.json", "(none)"),
      int_flag("max_seq_len", &TrainArgs::max_seq_len, 1, "tokens per sample"),
      int_flag("train_steps", &TrainArgs::train_steps, 1, "optimizer steps to train"),
      int_flag("eval_steps", &TrainArgs::eval_steps, 0, "evaluate every N steps; 0 = never"),
      int_flag("eval_iters", &TrainArgs::eval_iters, 1, "batches per evaluation"),
      int_flag("save_steps", &TrainArgs::save_steps, 0, "save a checkpoint every N steps; 0 = only at the end"),
      int_flag("max_checkpoints", &TrainArgs::max_checkpoints, 0,
               "keep the N newest checkpoints (never the one resumed from); 0 = keep all"),
      int_flag("log_steps", &TrainArgs::log_steps, 1, "log every N steps"),
      string_flag("output_dir", "DIR", &TrainArgs::output_dir, "checkpoints, logs and metrics", "(none)"),
      int_flag("seed", &TrainArgs::seed, 0, "random seed (init, data order, dropout)"),
      int_flag("pipe_parallel_size", &TrainArgs::pipe_parallel_size, 1, "pipeline stages"),
      {"model_parallel_size", "N", Arity::One, "tensor-parallel size; only 1 (tensor parallelism is not implemented)",
       [](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
         long long x;
         if (!parse_int64(v[0], x)) throw InputError(flag, "expected an integer, got " + quote(v[0]));
         if (x != 1)
           throw InputError(flag, "tensor parallelism is not implemented; use --model_parallel_size 1",
                            "use --pipe_parallel_size and data parallelism (more ranks) instead");
         a.model_parallel_size = 1;
       },
       [](const TrainArgs& a) { return std::to_string(a.model_parallel_size); }},
      int_flag("num_workers", &TrainArgs::num_workers, 0, "data-loading threads per rank"),
      {"split", "W,W,W", Arity::One, "train,validation,test weights of the data (e.g. 969,30,1)",
       [](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) { parse_split(a, flag, v[0]); },
       [](const TrainArgs& a) { return a.split; }},
      {"resume", "none|auto|PATH", Arity::One,
       "auto: resume from output_dir's latest checkpoint if there is one; none: start fresh; PATH: that checkpoint",
       [](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
         if (v[0].empty()) throw InputError(flag, "empty value", "none, auto or a checkpoint path");
         if (v[0] == "none") a.resume = ResumeMode::None, a.resume_path.clear();
         else if (v[0] == "auto") a.resume = ResumeMode::Auto, a.resume_path.clear();
         else a.resume = ResumeMode::Path, a.resume_path = v[0];
       },
       [](const TrainArgs& a) { return a.resume == ResumeMode::Path ? a.resume_path : std::string(to_string(a.resume)); }},
      bool_flag("use_flash_attn", &TrainArgs::use_flash_attn, "fused attention kernel (GPU backend)"),
      bool_flag("use_fused_ops", &TrainArgs::use_fused_ops, "fused kernels (GPU backend)"),
      bool_flag("dry_run", &TrainArgs::dry_run, "validate everything, print the resolved config and plan, exit 0"),
      int_flag("comm_timeout", &TrainArgs::comm_timeout, 1, "seconds before a stuck collective fails the run"),
      {"device", "cpu|cuda", Arity::One,
       "compute backend: cpu (oneTBB + OpenBLAS), or cuda (the rank's GPU by LOCAL_RANK, NCCL between ranks)",
       [](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
         if (v[0] != "cpu" && v[0] != "cuda") throw InputError(flag, "expected cpu or cuda, got " + quote(v[0]));
         a.device = v[0];
       },
       [](const TrainArgs& a) { return a.device; }},
      {"comm_backend", "auto|mpi|gloo", Arity::One,
       "how ranks meet: auto = MPI under mpirun/srun, Gloo with RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT",
       [](TrainArgs& a, const std::string& flag, const std::vector<std::string>& v) {
         if (v[0] != "auto" && v[0] != "mpi" && v[0] != "gloo")
           throw InputError(flag, "expected auto, mpi or gloo, got " + quote(v[0]));
         a.comm_backend = v[0];
       },
       [](const TrainArgs& a) { return a.comm_backend; }},
      int_flag("local_rank", &TrainArgs::local_rank, 0, "set by launchers; accepted and recorded"),
      int_flag("rank", &TrainArgs::rank, 0, "set by launchers; accepted and recorded"),
  };
  return table;
}

bool looks_like_flag(const std::string& tok) { return (tok.size() >= 2 && tok.rfind("--", 0) == 0) || tok == "-h"; }

std::string canonical(std::string name) {
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

}  // namespace

const char* to_string(ResumeMode m) {
  switch (m) {
    case ResumeMode::None: return "none";
    case ResumeMode::Auto: return "auto";
    case ResumeMode::Path: return "path";
  }
  return "?";
}

TrainArgs parse_train_args(const std::vector<std::string>& args) {
  TrainArgs a;
  std::vector<std::string> seen;
  std::vector<std::string> names;
  for (const Flag& f : flags()) names.push_back(f.name);

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& tok = args[i];
    if (tok == "-h" || tok == "--help") {
      a.help = true;
      continue;
    }
    if (!looks_like_flag(tok))
      throw InputError(tok, "unexpected argument " + quote(tok) + " (flags start with --)",
                       "see fmtrain --help; a value that starts with - may need --flag=value");
    std::string body = tok.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      inline_value = body.substr(eq + 1);
      body = body.substr(0, eq);
    }
    const std::string spelled = "--" + body;
    const std::string name = canonical(body);
    const Flag* flag = nullptr;
    for (const Flag& f : flags())
      if (f.name == name) flag = &f;
    if (!flag) {
      std::string near = nearest_word(name, names);
      throw InputError(spelled, "unknown flag",
                       near.empty() ? "see fmtrain --help for the flags" : "did you mean --" + near + "?");
    }
    for (const std::string& s : seen)
      if (s == name) throw InputError(spelled, "given more than once", "give each flag once");
    seen.push_back(name);

    std::vector<std::string> values;
    if (flag->arity == Arity::Bool) {
      std::string v = "true";
      if (inline_value) {
        v = *inline_value;
      } else if (i + 1 < args.size() && !looks_like_flag(args[i + 1])) {
        v = args[++i];
      }
      if (v != "true" && v != "false" && v != "1" && v != "0")
        throw InputError(spelled, "expected true, false, 1 or 0, got " + quote(v),
                         spelled + " alone means true; write " + spelled + " false to turn it off");
      values.push_back(v);
    } else {
      if (inline_value) values.push_back(*inline_value);
      else if (i + 1 < args.size() && !looks_like_flag(args[i + 1])) values.push_back(args[++i]);
      if (flag->arity == Arity::Many)
        while (i + 1 < args.size() && !looks_like_flag(args[i + 1])) values.push_back(args[++i]);
      if (values.empty())
        throw InputError(spelled, "missing value", "write " + spelled + " " + flag->metavar);
    }
    flag->set(a, spelled, values);
  }

  if (a.eval_steps > 0 && a.split_weights[1] <= 0)
    throw InputError("--eval_steps",
                     fmt::format("evaluation every {} steps needs validation data, but --split {} gives it weight 0",
                                 a.eval_steps, a.split),
                     "give the validation share a weight, e.g. --split 969,30,1, or use --eval_steps 0");
  return a;
}

TrainArgs parse_train_args(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_train_args(args);
}

std::string train_args_help() {
  TrainArgs defaults;
  std::string out =
      "usage: fmtrain [--flag value | --flag=value]...\n\n"
      "Trains a LLaMA-family model with pipeline and data parallelism, configured by a DeepSpeed-style\n"
      "JSON file (--deepspeed_config) and these flags. --flag-with-dashes is the same as\n"
      "--flag_with_dashes; a boolean flag alone means true.\n\nflags:\n";
  for (const Flag& f : flags()) {
    std::string head = "  --" + f.name + (f.metavar.empty() ? " [true|false]" : " " + f.metavar);
    out += head + "\n      " + f.help + " (default: " + f.show(defaults) + ")\n";
  }
  out += "  -h, --help\n      print this text and exit\n";
  return out;
}

std::string train_args_reference_markdown() {
  TrainArgs defaults;
  std::string out = "| flag | value | default | meaning |\n|---|---|---|---|\n";
  for (const Flag& f : flags()) {
    std::string metavar;  // a table cell: escape the pipes
    for (char c : f.metavar.empty() ? std::string("[true|false]") : f.metavar) {
      if (c == '|') metavar += '\\';
      metavar += c;
    }
    out += "| `--" + f.name + "` | `" + metavar + "` | `" + f.show(defaults) + "` | " + f.help + " |\n";
  }
  return out;
}

std::string train_args_summary(const TrainArgs& args) {
  std::string out;
  for (const Flag& f : flags()) out += "--" + f.name + " " + f.show(args) + "\n";
  return out;
}

}  // namespace fm::runtime
