// Prints our schedules and partitions as text, for the reference check against DeepSpeed.
//
//   pipeline_dump schedules KIND MAX_STAGES MAX_MICRO_BATCHES
//     one line per (p, m, s), p <= MAX_STAGES, m <= MAX_MICRO_BATCHES, s < p:
//     "KIND p m s buffers=N|step 0|step 1|..." with a step's instructions joined by spaces.
//   pipeline_dump partition   (requests on stdin, one answer line each)
//     "uniform N P"                          -> bounds
//     "balanced P w0 w1 ..."                 -> bounds
//     "layers METHOD P L c0 c1 ... c(L+1)"   -> bounds, or "error: ..." (our layer type names)
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "pipeline/partition.h"
#include "pipeline/schedule.h"
#include "runtime/base/error.h"

namespace {

using namespace fm::pipeline;

std::string bounds_text(const std::vector<int>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(parts[i]);
  }
  return s;
}

int dump_schedules(const std::string& kind_name, int max_stages, int max_micro_batches) {
  ScheduleKind kind;
  if (!parse_schedule_kind(kind_name, kind)) {
    std::fprintf(stderr, "unknown schedule kind '%s'\n", kind_name.c_str());
    return 2;
  }
  for (int p = 1; p <= max_stages; ++p) {
    for (int m = 1; m <= max_micro_batches; ++m) {
      for (int s = 0; s < p; ++s) {
        const Schedule sch = make_schedule(kind, p, m, s);
        std::string line = fmt::format("{} {} {} {} buffers={}", kind_name, p, m, s, sch.num_buffers);
        for (const Step& step : sch.steps) {
          line += '|';
          for (size_t i = 0; i < step.size(); ++i) {
            if (i) line += ' ';
            line += to_string(step[i]);
          }
        }
        std::printf("%s\n", line.c_str());
      }
    }
  }
  return 0;
}

std::string answer(const std::string& request) {
  std::istringstream in(request);
  std::string what;
  in >> what;
  if (what == "uniform") {
    int n = 0, p = 0;
    in >> n >> p;
    return bounds_text(partition_uniform(n, p));
  }
  if (what == "balanced") {
    int p = 0;
    in >> p;
    std::vector<double> weights;
    for (double w; in >> w;) weights.push_back(w);
    return bounds_text(partition_balanced(weights, p));
  }
  if (what == "layers") {
    std::string method;
    int p = 0;
    int64_t layers = 0;
    in >> method >> p >> layers;
    std::vector<int64_t> counts;
    for (int64_t c; in >> c;) counts.push_back(c);
    try {
      return bounds_text(partition_layers(method, p, layer_type_names(layers), counts));
    } catch (const fm::InputError& e) {
      std::string text = fm::format_input_error(e);
      for (char& c : text)
        if (c == '\n') c = ' ';
      return text;
    }
  }
  return "error: unknown request '" + what + "'";
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "schedules" && argc == 5)
    return dump_schedules(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  if (mode == "partition" && argc == 2) {
    for (std::string line; std::getline(std::cin, line);)
      if (!line.empty()) std::printf("%s\n", answer(line).c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: pipeline_dump schedules KIND MAX_STAGES MAX_MICRO_BATCHES\n"
               "       pipeline_dump partition < requests\n");
  return 2;
}
