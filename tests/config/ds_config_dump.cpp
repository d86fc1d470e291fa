// Test helper: prints the resolved config of a DeepSpeed-style JSON file, for the reference
// checks against DeepSpeed (deepspeed_parity.py).
//   ds_config_dump CONFIG DP_SIZE TRAIN_STEPS HIDDEN_SIZE
// Exit 0 with the JSON on stdout, or 2 with the error on stderr.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "runtime/base/error.h"
#include "runtime/config/ds_config.h"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s CONFIG DP_SIZE TRAIN_STEPS HIDDEN_SIZE\n", argv[0]);
    return 1;
  }
  try {
    fm::runtime::DsConfig cfg = fm::runtime::load_ds_config(argv[1]);
    fm::runtime::ResolveContext ctx;
    ctx.dp_size = std::atoi(argv[2]);
    ctx.train_steps = std::atoll(argv[3]);
    ctx.hidden_size = std::atoll(argv[4]);
    fm::runtime::resolve_ds_config(cfg, ctx);
    std::fputs(fm::runtime::ds_config_to_json(cfg).c_str(), stdout);
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  }
  return 0;
}
