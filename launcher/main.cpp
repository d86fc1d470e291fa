// fmlaunch: starts the ranks of a distributed job (see docs/launcher.md).
#include <cstdio>
#include <string>
#include <vector>

#include "fm_build_config.h"
#include "launcher/entry.h"
#include "runtime/base/error.h"

int main(int argc, char** argv) {
  using namespace fm::launcher;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    Options o = parse_options(args);
    if (o.help) {
      std::fputs(usage_text().c_str(), stdout);
      return 0;
    }
    if (o.version) {
      std::printf("fmlaunch %s\n", FM_VERSION);
      return 0;
    }
    return o.agent ? run_agent(o) : run_launcher(o);
  } catch (const fm::InputError& e) {
    std::fprintf(stderr, "%s\n", fm::format_input_error(e).c_str());
    return fm::kExitInputError;
  } catch (const fm::RuntimeFault& e) {
    std::fprintf(stderr, "fmlaunch: error: %s\n", e.what());
    return fm::kExitRuntimeFault;
  }
}
