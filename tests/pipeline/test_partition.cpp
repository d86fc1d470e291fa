#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>

#include "pipeline/partition.h"
#include "runtime/base/error.h"

using namespace fm::pipeline;

namespace {

std::vector<int64_t> ones(size_t n) { return std::vector<int64_t>(n, 1); }

// The weight of each part of a partition.
std::vector<double> part_weights(const std::vector<double>& w, const std::vector<int>& parts) {
  std::vector<double> out;
  for (size_t s = 0; s + 1 < parts.size(); ++s)
    out.push_back(std::accumulate(w.begin() + parts[s], w.begin() + parts[s + 1], 0.0));
  return out;
}

}  // namespace

TEST_CASE("uniform partition gives the first stages the extra layers") {
  CHECK(partition_uniform(10, 3) == std::vector<int>{0, 4, 7, 10});
  CHECK(partition_uniform(8, 4) == std::vector<int>{0, 2, 4, 6, 8});
  CHECK(partition_uniform(3, 5) == std::vector<int>{0, 1, 2, 3, 3, 3});
  CHECK(partition_uniform(7, 1) == std::vector<int>{0, 7});
}

TEST_CASE("balanced partition minimises the spread between the heaviest and lightest part") {
  // The two examples DeepSpeed's behaviour is documented with.
  CHECK(partition_balanced({0, 1, 1, 1, 1, 1, 1, 1, 1, 0}, 4) == std::vector<int>{0, 3, 5, 7, 10});
  CHECK(partition_balanced({100, 10, 10, 10, 10, 10, 10, 100}, 4) == std::vector<int>{0, 1, 4, 7, 8});
  // Exhaustive check of the objective on a small case: no cut into 3 parts has a smaller spread.
  const std::vector<double> w{5, 1, 1, 2, 7, 3, 3};
  const auto parts = partition_balanced(w, 3);
  const auto pw = part_weights(w, parts);
  const double spread = *std::max_element(pw.begin(), pw.end()) - *std::min_element(pw.begin(), pw.end());
  for (int a = 1; a < 6; ++a)
    for (int b = a + 1; b < 7; ++b) {
      const auto q = part_weights(w, {0, a, b, 7});
      CHECK(spread <= *std::max_element(q.begin(), q.end()) - *std::min_element(q.begin(), q.end()));
    }
}

TEST_CASE("layer type names: embedding, decoder layers, head") {
  const auto names = layer_type_names(3);
  REQUIRE(names.size() == 5);
  CHECK(names[0] == "EmbeddingLayer");
  CHECK(names[1] == "LlamaDecoderLayer");
  CHECK(names[3] == "LlamaDecoderLayer");
  CHECK(names[4] == "HeadLayer");
}

TEST_CASE("partition methods") {
  const auto names = layer_type_names(6);  // 8 layers
  const std::vector<int64_t> counts{1000, 10, 10, 10, 10, 10, 10, 1000};
  CHECK(partition_layers("uniform", 3, names, counts) == std::vector<int>{0, 3, 6, 8});
  CHECK(partition_layers("UNIFORM", 3, names, counts) == std::vector<int>{0, 3, 6, 8});
  // Parameters: the heavy embedding and head get stages of their own.
  const auto by_params = partition_layers("parameters", 3, names, counts);
  CHECK(by_params.front() == 0);
  CHECK(by_params[1] == 1);
  CHECK(by_params[2] == 7);
  // Only decoder layers weigh: 6 of them over 2 stages, 3 each.
  const auto by_type = partition_layers("type:decoder", 2, names, counts);
  const auto pw = part_weights({0, 1, 1, 1, 1, 1, 1, 0}, by_type);
  CHECK(pw == std::vector<double>{3, 3});
  // Case-insensitive, and only the text up to a second ':' is the pattern.
  CHECK(partition_layers("Type:LLAMADECODERLAYER:whatever", 2, names, counts) == by_type);
  // Every layer gets a stage when stages == layers.
  CHECK(partition_layers("parameters", 8, names, counts) == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("partition errors name the key and say what to do") {
  const auto names = layer_type_names(2);  // 4 layers
  const auto counts = ones(names.size());
  try {
    partition_layers("parameters", 5, names, counts, {"pipeline.partition_method", "--pipe-stages"});
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "--pipe-stages");
    CHECK(std::string(e.what()).find("5 pipeline stages for a model of 4 layers") != std::string::npos);
    CHECK(e.hint().find("at most 4 stages") != std::string::npos);
  }
  try {
    partition_layers("parameter", 2, names, counts);
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(e.where() == "pipeline.partition_method");
    CHECK(e.hint().find("parameters") != std::string::npos);
  }
  try {
    partition_layers("type:transformer", 2, names, counts);
    FAIL("expected an InputError");
  } catch (const fm::InputError& e) {
    CHECK(std::string(e.what()).find("matches no layer type") != std::string::npos);
    CHECK(e.hint().find("LlamaDecoderLayer") != std::string::npos);
  }
  CHECK_THROWS_AS(partition_layers("type:(", 2, names, counts), fm::InputError);
  CHECK_THROWS_AS(partition_layers("profile", 2, names, counts), fm::InputError);
  CHECK_THROWS_AS(partition_layers("uniform", 0, names, counts), fm::InputError);
}
