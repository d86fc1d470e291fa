// Runs our loss scaler over overflow patterns, for the reference check against DeepSpeed.
//
// Reads one case per line on stdin:
//   LOSS_SCALE INITIAL_SCALE_POWER WINDOW HYSTERESIS CONSECUTIVE(0|1) MIN_LOSS_SCALE PATTERN
// PATTERN is a string of 0 (good step) and 1 (overflow). Answers one JSON line per case:
//   {"scales": [scale after each update], "skips": [0|1 ...], "messages": [[lines of each update]],
//    "error": null | "text of the RuntimeFault", "error_step": index of the update that threw or -1}
// Updates stop at the first RuntimeFault.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/base/error.h"
#include "zero/loss_scaler.h"

namespace {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string run_case(const std::string& line) {
  std::istringstream in(line);
  fm::zero::LossScalerConfig c;
  int consecutive = 0;
  std::string pattern;
  if (!(in >> c.loss_scale >> c.initial_scale_power >> c.loss_scale_window >> c.hysteresis >> consecutive >>
        c.min_loss_scale >> pattern))
    throw std::runtime_error("cannot parse case: " + line);
  c.consecutive_hysteresis = consecutive != 0;
  fm::zero::LossScaler scaler(c);
  std::vector<std::string> scales, skips, messages;
  std::string error = "null";
  int error_step = -1;
  for (size_t i = 0; i < pattern.size(); ++i) {
    try {
      const fm::zero::LossScaleUpdate u = scaler.update(pattern[i] == '1');
      scales.push_back(fmt::format("{:.17g}", u.next_scale));
      skips.push_back(u.skip_step ? "1" : "0");
      std::vector<std::string> q;
      for (const auto& m : u.messages) q.push_back(quoted(m));
      messages.push_back(fmt::format("[{}]", fmt::join(q, ", ")));
    } catch (const fm::RuntimeFault& e) {
      error = quoted(e.what());
      error_step = static_cast<int>(i);
      break;
    }
  }
  return fmt::format(R"({{"scales": [{}], "skips": [{}], "messages": [{}], "error": {}, "error_step": {}}})",
                     fmt::join(scales, ", "), fmt::join(skips, ", "), fmt::join(messages, ", "), error, error_step);
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    try {
      std::cout << run_case(line) << "\n";
    } catch (const std::exception& e) {
      std::cerr << "loss_scaler_dump: " << e.what() << "\n";
      return 1;
    }
  }
  return 0;
}
