// fmtrain: trains a LLaMA-family model. Exit codes: 0 done, 2 bad input (flags, config, model
// config, data: reported before any expensive work), 1 a runtime fault (naming the rank).
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>

#include "fm_build_config.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/config/train_args.h"
#include "runtime/run_spec.h"
#include "runtime/trainer.h"

namespace {

int run(int argc, char** argv) {
  using namespace fm::runtime;
  TrainArgs args = parse_train_args(argc, argv);
  if (args.help) {
    std::fputs("usage: fmtrain [flags]\n\n", stdout);
    std::fputs(train_args_help().c_str(), stdout);
    return 0;
  }
  WorldShape world;
  fm::log::set_rank(world.rank, world.world_size);

  RunSpec spec = prepare_run(args, world);
  if (args.dry_run) {
    for (const auto& n : spec.notes) fm::log::info("{}", n);
    fm::log::info("{}", train_args_summary(args));
    fm::log::info("resolved config:\n{}", ds_config_to_json(spec.ds));
    (void)open_run_data(spec);
    fm::log::info("dry run: flags, config, model and data are valid");
    return 0;
  }

  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(args.output_dir) / "logs", ec);
  if (ec)
    throw fm::InputError("--output_dir", fmt::format("cannot create {}: {}", args.output_dir, ec.message()),
                         "choose a writable directory");
  fm::log::open_file((std::filesystem::path(args.output_dir) / "logs" / fmt::format("rank_{}.log", world.rank)).string());

  prepare_run_data(spec);
  Trainer trainer(std::move(spec));
  trainer.print_header();
  trainer.train();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "fmtrain: %s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  } catch (const fm::RuntimeFault& e) {
    fm::log::error("{}", e.what());
    return fm::kExitRuntimeFault;
  } catch (const std::exception& e) {
    fm::log::error("internal error: {}", e.what());
    return fm::kExitRuntimeFault;
  }
}
