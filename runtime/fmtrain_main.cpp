// fmtrain: trains a LLaMA-family model, alone or as one rank of a job started by mpirun, srun,
// fmlaunch or any torchrun-style launcher. Exit codes: 0 done; 2 bad input (flags, config, model
// config, data), reported before any expensive work; 1 a runtime fault, naming the rank.
#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include <unistd.h>

#include "fm_build_config.h"
#include "kernels/cpu/cpu_ops.h"
#include "runtime/base/error.h"
#include "runtime/base/log.h"
#include "runtime/comm/bootstrap.h"
#include "runtime/comm/topology.h"
#include "runtime/config/train_args.h"
#include "runtime/run_spec.h"
#include "runtime/trainer.h"

#if FM_HAVE_CUDA
#include "kernels/cuda/cuda_ops.h"
#include "runtime/comm/nccl_comm.h"
#endif

namespace {

using namespace fm::runtime;
namespace comm = fm::comm;

std::unique_ptr<comm::World> g_world;

// Setup errors (flags, config, data) are usually the same on every rank. All ranks agree on
// whether one happened; the lowest failing rank prints it and every rank exits 2, without the
// noise of an abort. Ranks that fail alone later (a bad token in their shard) abort the job.
void agree_on_setup_errors(const comm::CommPtr& world, const std::string& error) {
  const int failing = world->all_reduce_value<int>(error.empty() ? world->size() : world->rank(), comm::ReduceOp::Min);
  if (failing == world->size()) return;
  if (world->rank() == failing) std::fprintf(stderr, "fmtrain: %s\n", error.c_str());
  g_world->finalize();
  std::exit(fm::kExitInputError);
}

int run(int argc, char** argv) {
  TrainArgs args = parse_train_args(argc, argv);
  if (args.help) {
    std::fputs("usage: fmtrain [flags]\n\n", stdout);
    std::fputs(train_args_help().c_str(), stdout);
    return 0;
  }
  comm::BootstrapOptions boot;
  boot.backend = args.comm_backend;
  boot.timeout = std::chrono::seconds(args.comm_timeout);
  g_world = comm::bootstrap(boot);
  const comm::CommPtr& world = g_world->comm();

  RunSpec spec;
  std::string setup_error;
  try {
    spec = prepare_run(args, {g_world->size(), g_world->rank()});
  } catch (const fm::InputError& e) {
    setup_error = fm::format_input_error(e);
  }
  agree_on_setup_errors(world, setup_error);
  const comm::Topology topo(g_world->size(), spec.pipe);

  if (args.dry_run) {
    if (g_world->rank() == 0) {
      for (const auto& n : spec.notes) fm::log::info("{}", n);
      fm::log::info("{}", train_args_summary(args));
      fm::log::info("ranks:\n{}", topo.table(g_world->hosts()));
      fm::log::info("resolved config:\n{}", ds_config_to_json(spec.ds));
    }
    try {
      (void)open_run_data(spec);
    } catch (const fm::InputError& e) {
      setup_error = fm::format_input_error(e);
    }
    agree_on_setup_errors(world, setup_error);
    fm::log::info("dry run: flags, config, model and data are valid");
    g_world->finalize();
    return 0;
  }

  // Rank 0 makes the output directory and tokenizes raw data once; the others wait for it.
  try {
    if (g_world->rank() == 0) {
      std::error_code ec;
      std::filesystem::create_directories(std::filesystem::path(args.output_dir) / "logs", ec);
      if (ec)
        throw fm::InputError("--output_dir", fmt::format("cannot create {}: {}", args.output_dir, ec.message()),
                             "choose a writable directory");
      prepare_run_data(spec);
    }
  } catch (const fm::InputError& e) {
    setup_error = fm::format_input_error(e);
  }
  agree_on_setup_errors(world, setup_error);
  fm::log::open_file(
      (std::filesystem::path(args.output_dir) / "logs" / fmt::format("rank_{}.log", g_world->rank())).string());
  fm::log::info_all("{} | rank {} on {} (pid {})", g_world->description(), g_world->rank(), g_world->hostname(),
                    static_cast<long>(getpid()));

  // The compute backend, and the communicator its buffers travel over.
  std::unique_ptr<fm::kernels::Ops> ops;
  comm::CommPtr compute_world = world;
  try {
    if (args.device == "cuda") {
#if FM_HAVE_CUDA
      const int device = fm::kernels::cuda::select_cuda_device(g_world->size() > 1 ? g_world->local_rank() : -1);
      ops = fm::kernels::cuda::make_cuda_ops(device);
      if (g_world->size() > 1) {
        compute_world = comm::make_nccl_communicator(world, device, boot.timeout);
        comm::as_nccl(*compute_world)->set_compute_stream(fm::kernels::cuda::as_cuda_ops(*ops)->stream());
      }
      // One-rank groups copy between device buffers (every collective buffer is 4-byte elements).
      fm::kernels::Ops* device_ops = ops.get();
      compute_world->set_local_copy([device_ops](void* out, const void* in, size_t bytes) {
        FM_CHECK(bytes % 4 == 0, "collective buffers hold 4- or 8-byte elements");
        device_ops->copy(fm::kernels::f32(static_cast<float*>(out)), fm::kernels::f32(static_cast<const float*>(in)),
                         int64_t(bytes / 4));
      });
#endif
    } else {
      // Ranks on one host share its cores.
      const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
      ops = fm::kernels::make_cpu_ops(std::max(1, cores / std::max(1, g_world->local_size())));
    }
  } catch (const fm::InputError& e) {
    setup_error = fm::format_input_error(e);
  }
  agree_on_setup_errors(world, setup_error);

  comm::RankGroups groups = comm::make_groups(compute_world, topo);
  std::unique_ptr<Trainer> trainer;
  try {
    trainer = std::make_unique<Trainer>(std::move(spec), topo, groups, std::move(ops));
  } catch (const fm::InputError& e) {
    setup_error = fm::format_input_error(e);
  }
  agree_on_setup_errors(world, setup_error);
  trainer->print_header();
  trainer->train();
  trainer.reset();
  g_world->finalize();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const fm::InputError& e) {
    const std::string msg = "fmtrain: " + fm::format_input_error(e);
    if (g_world && g_world->size() > 1) comm::abort_job(fm::kExitInputError, msg);
    std::fprintf(stderr, "%s\n", msg.c_str());
    return fm::kExitInputError;
  } catch (const fm::RuntimeFault& e) {
    // Communicator faults already name this rank and the peer.
    const std::string msg = e.what();
    if (g_world && g_world->size() > 1) comm::abort_job(fm::kExitRuntimeFault, msg);
    fm::log::error("{}", e.what());
    return fm::kExitRuntimeFault;
  } catch (const std::exception& e) {
    const std::string msg = fmt::format("rank {}: internal error: {}", fm::log::rank(), e.what());
    if (g_world && g_world->size() > 1) comm::abort_job(fm::kExitRuntimeFault, msg);
    std::fprintf(stderr, "%s\n", msg.c_str());
    return fm::kExitRuntimeFault;
  }
}
