#include "pipeline/partition.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <regex>

#include "runtime/base/error.h"
#include "runtime/base/text.h"

namespace fm::pipeline {

std::vector<std::string> layer_type_names(int64_t num_decoder_layers) {
  FM_CHECK(num_decoder_layers >= 0);
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(num_decoder_layers) + 2);
  names.emplace_back(kEmbeddingLayerType);
  for (int64_t i = 0; i < num_decoder_layers; ++i) names.emplace_back(kDecoderLayerType);
  names.emplace_back(kHeadLayerType);
  return names;
}

std::vector<int> partition_uniform(int num_items, int num_parts) {
  FM_CHECK(num_items >= 0 && num_parts >= 1);
  std::vector<int> parts(static_cast<size_t>(num_parts) + 1);
  if (num_items <= num_parts) {
    for (int p = 0; p <= num_parts; ++p) parts[p] = std::min(p, num_items);
    return parts;
  }
  const int chunk = num_items / num_parts;
  const int residual = num_items - chunk * num_parts;
  for (int p = 0; p <= num_parts; ++p) parts[p] = p * chunk + std::min(p, residual);
  return parts;
}

std::vector<int> partition_balanced(const std::vector<double>& weights, int num_parts) {
  FM_CHECK(num_parts >= 1);
  const int n = static_cast<int>(weights.size());
  const int m = num_parts;
  if (n <= m) return partition_uniform(n, m);

  // The same dynamic programme, with the same floating-point operations and tie rule (>=), so the
  // chosen cuts match DeepSpeed's even among equal-cost candidates.
  const double inf = std::numeric_limits<double>::infinity();
  const size_t cols = static_cast<size_t>(m) + 1;
  auto at = [cols](int i, int j) { return static_cast<size_t>(i) * cols + static_cast<size_t>(j); };
  std::vector<double> dp_max((n + 1) * cols, inf), dp_min((n + 1) * cols, inf), dp_cost((n + 1) * cols, inf);
  std::vector<int> position((n + 1) * cols, 0);
  std::vector<double> prefix(static_cast<size_t>(n) + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + weights[i];

  dp_max[at(0, 0)] = 0;
  dp_cost[at(0, 0)] = 0;
  for (int i = 1; i <= n; ++i) {
    for (int j = 1; j <= std::min(i, m); ++j) {
      for (int k = 0; k < i; ++k) {
        const double part = prefix[i] - prefix[k];
        const double max_sum = std::max(dp_max[at(k, j - 1)], part);
        const double min_sum = std::min(dp_min[at(k, j - 1)], part);
        const double cost = max_sum - min_sum;
        if (dp_cost[at(i, j)] >= cost) {
          dp_cost[at(i, j)] = cost;
          dp_max[at(i, j)] = max_sum;
          dp_min[at(i, j)] = min_sum;
          position[at(i, j)] = k;
        }
      }
    }
  }

  std::vector<int> parts{n};
  for (int j = m; j >= 1; --j) parts.push_back(position[at(parts.back(), j)]);
  std::reverse(parts.begin(), parts.end());
  return parts;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<double> type_weights(const std::string& pattern, const std::string& method_text,
                                 const std::vector<std::string>& layer_types, const PartitionKeys& keys) {
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript | std::regex::icase);
  } catch (const std::regex_error& e) {
    throw InputError(keys.method,
                     fmt::format("'{}' is not a valid regular expression: {}", pattern, e.what()),
                     "the text after 'type:' is an ECMAScript regular expression, e.g. type:decoder");
  }
  std::vector<double> weights(layer_types.size(), 0.0);
  bool any = false;
  for (size_t i = 0; i < layer_types.size(); ++i) {
    if (std::regex_search(layer_types[i], re)) {
      weights[i] = 1.0;
      any = true;
    }
  }
  if (!any) {
    std::vector<std::string> distinct;
    for (const auto& t : layer_types)
      if (std::find(distinct.begin(), distinct.end(), t) == distinct.end()) distinct.push_back(t);
    throw InputError(keys.method, fmt::format("partition method '{}' matches no layer type", method_text),
                     fmt::format("the layer types are {}", join(distinct, ", ")));
  }
  return weights;
}

}  // namespace

std::vector<int> partition_layers(std::string_view method_in, int num_stages,
                                  const std::vector<std::string>& layer_types,
                                  const std::vector<int64_t>& layer_params, const PartitionKeys& keys) {
  FM_CHECK(layer_types.size() == layer_params.size(), "one type name and one parameter count per layer");
  const int num_layers = static_cast<int>(layer_types.size());
  if (num_stages < 1)
    throw InputError(keys.stages, fmt::format("{} pipeline stages requested", num_stages),
                     "use at least 1 stage");
  if (num_stages > num_layers)
    throw InputError(
        keys.stages,
        fmt::format("{} pipeline stages for a model of {} layers: every stage needs at least one layer",
                    num_stages, num_layers),
        fmt::format("use at most {} stages (the embedding, each decoder layer and the head count "
                    "as one layer each)",
                    num_layers));

  const std::string method = lower(method_in);
  if (method == "uniform") return partition_uniform(num_layers, num_stages);
  if (method == "parameters") {
    std::vector<double> weights(layer_params.begin(), layer_params.end());
    return partition_balanced(weights, num_stages);
  }
  if (method.rfind("type:", 0) == 0) {
    const size_t start = 5;
    const size_t stop = method.find(':', start);
    const std::string pattern =
        method.substr(start, stop == std::string::npos ? std::string::npos : stop - start);
    return partition_balanced(type_weights(pattern, std::string(method_in), layer_types, keys), num_stages);
  }
  throw InputError(keys.method, fmt::format("unknown partition method '{}'", method_in),
                   method.find(':') == std::string::npos
                       ? suggestion_hint(method, {"parameters", "uniform", "type:REGEX"})
                       : "use parameters, uniform or type:REGEX (e.g. type:decoder)");
}

}  // namespace fm::pipeline
