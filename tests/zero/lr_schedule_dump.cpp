// Prints the lr (and OneCycle's betas) of our schedules, for the reference check against DeepSpeed.
//
// Reads one request per line on stdin:
//   TYPE STEPS BASE_LR key=value ...      (TYPE: Constant, WarmupLR, WarmupDecayLR, WarmupCosineLR,
//                                          OneCycle, LRRangeTest; keys as in DeepSpeed's params)
// and answers one line: the values after construction and after each of STEPS step() calls,
// "lr" or "lr/beta1/beta2" each, space separated with 17 significant digits; or "error: ...".
#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "runtime/base/error.h"
#include "runtime/base/text.h"
#include "zero/lr_schedule.h"

namespace {

using namespace fm::zero;

struct Fields {
  std::string key, value;
};

// Parses f.value into `field` when f.key is `key`.
bool take(const Fields& f, const char* key, double& field) {
  if (f.key != key) return false;
  if (!fm::parse_double(f.value, field)) throw std::runtime_error("bad number for " + f.key + ": " + f.value);
  return true;
}
bool take(const Fields& f, const char* key, int64_t& field) {
  if (f.key != key) return false;
  long long i = 0;
  if (!fm::parse_int64(f.value, i)) throw std::runtime_error("bad integer for " + f.key + ": " + f.value);
  field = i;
  return true;
}
bool take(const Fields& f, const char* key, std::optional<int64_t>& field) {
  int64_t i = 0;
  if (!take(f, key, i)) return false;
  field = i;
  return true;
}
bool take(const Fields& f, const char* key, bool& field) {
  if (f.key != key) return false;
  field = f.value == "true";
  return true;
}
bool take(const Fields& f, const char* key, WarmupType& field) {
  if (f.key != key) return false;
  field = f.value == "linear" ? WarmupType::Linear : WarmupType::Log;
  return true;
}

[[noreturn]] void unknown(const Fields& f) { throw std::runtime_error("unknown key " + f.key); }

void set(WarmupLRParams& p, const Fields& f) {
  if (!(take(f, "warmup_min_lr", p.warmup_min_lr) || take(f, "warmup_max_lr", p.warmup_max_lr) ||
        take(f, "warmup_num_steps", p.warmup_num_steps) || take(f, "warmup_type", p.warmup_type)))
    unknown(f);
}

void set(WarmupDecayLRParams& p, const Fields& f) {
  if (!(take(f, "total_num_steps", p.total_num_steps) || take(f, "warmup_min_lr", p.warmup_min_lr) ||
        take(f, "warmup_max_lr", p.warmup_max_lr) || take(f, "warmup_num_steps", p.warmup_num_steps) ||
        take(f, "warmup_type", p.warmup_type)))
    unknown(f);
}

void set(WarmupCosineLRParams& p, const Fields& f) {
  if (!(take(f, "total_num_steps", p.total_num_steps) || take(f, "warmup_min_ratio", p.warmup_min_ratio) ||
        take(f, "warmup_num_steps", p.warmup_num_steps) || take(f, "cos_min_ratio", p.cos_min_ratio) ||
        take(f, "warmup_type", p.warmup_type)))
    unknown(f);
}

void set(OneCycleParams& p, const Fields& f) {
  if (!(take(f, "cycle_min_lr", p.cycle_min_lr) || take(f, "cycle_max_lr", p.cycle_max_lr) ||
        take(f, "decay_lr_rate", p.decay_lr_rate) ||
        take(f, "cycle_first_step_size", p.cycle_first_step_size) ||
        take(f, "cycle_second_step_size", p.cycle_second_step_size) ||
        take(f, "cycle_first_stair_count", p.cycle_first_stair_count) ||
        take(f, "cycle_second_stair_count", p.cycle_second_stair_count) ||
        take(f, "decay_step_size", p.decay_step_size) || take(f, "cycle_momentum", p.cycle_momentum) ||
        take(f, "cycle_min_mom", p.cycle_min_mom) || take(f, "cycle_max_mom", p.cycle_max_mom) ||
        take(f, "decay_mom_rate", p.decay_mom_rate)))
    unknown(f);
}

void set(LRRangeTestParams& p, const Fields& f) {
  if (!(take(f, "lr_range_test_min_lr", p.lr_range_test_min_lr) ||
        take(f, "lr_range_test_step_size", p.lr_range_test_step_size) ||
        take(f, "lr_range_test_step_rate", p.lr_range_test_step_rate) ||
        take(f, "lr_range_test_staircase", p.lr_range_test_staircase)))
    unknown(f);
}

void set(ConstantLRParams&, const Fields& f) { unknown(f); }

LrScheduleParams make_params(const std::string& type) {
  if (type == "Constant") return ConstantLRParams{};
  if (type == "WarmupLR") return WarmupLRParams{};
  if (type == "WarmupDecayLR") return WarmupDecayLRParams{};
  if (type == "WarmupCosineLR") return WarmupCosineLRParams{};
  if (type == "OneCycle") return OneCycleParams{};
  if (type == "LRRangeTest") return LRRangeTestParams{};
  throw std::runtime_error("unknown schedule type " + type);
}

std::string answer(const std::string& line) {
  std::istringstream in(line);
  std::string type;
  int steps = 0;
  double base_lr = 0;
  in >> type >> steps >> base_lr;
  LrScheduleParams params = make_params(type);
  for (std::string kv; in >> kv;) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) throw std::runtime_error("expected key=value, got " + kv);
    const Fields f{kv.substr(0, eq), kv.substr(eq + 1)};
    std::visit([&](auto& p) { set(p, f); }, params);
  }
  try {
    LrSchedule schedule(params, base_lr);
    std::string out;
    for (int i = 0; i <= steps; ++i) {
      if (i > 0) {
        schedule.step();
        out += ' ';
      }
      out += fmt::format("{:.17g}", schedule.lr());
      if (const auto b = schedule.betas()) out += fmt::format("/{:.17g}/{:.17g}", b->beta1, b->beta2);
    }
    return out;
  } catch (const fm::InputError& e) {
    std::string text = fm::format_input_error(e);
    for (char& c : text)
      if (c == '\n') c = ' ';
    return text;
  }
}

}  // namespace

int main() {
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    try {
      std::printf("%s\n", answer(line).c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lr_schedule_dump: %s in '%s'\n", e.what(), line.c_str());
      return 2;
    }
  }
  return 0;
}
