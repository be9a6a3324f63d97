// The AWQ golden groups of tests/golden/awq_fixtures.py (real SmolLM2 layers):
// awq_<name>.json (rows per linear, the configurations) and awq_<name>.bin
// (float32: W[sum rows, cols], H[cols, cols], mean |x|[cols]).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/golden_files.h"

namespace compressd::engine::testing {

struct AwqGolden {
  nlohmann::json fix;
  std::vector<float> all;  // W, H, mean |x|
  int64_t rows = 0, cols = 0;
  const float* w() const { return all.data(); }
  const float* h() const { return all.data() + rows * cols; }
  const float* x_mean() const { return h() + cols * cols; }
};

// Loads awq_<name>; a size mismatch fails the calling test.
inline AwqGolden LoadAwqGolden(const std::string& name) {
  AwqGolden g;
  g.fix = nlohmann::json::parse(compressd::testing::ReadFileBytes(
      compressd::testing::GoldenFixture("awq_" + name + ".json")));
  const std::string bytes =
      compressd::testing::ReadFileBytes(compressd::testing::GoldenFixture("awq_" + name + ".bin"));
  g.cols = g.fix["cols"];
  for (const auto& r : g.fix["rows"]) g.rows += r.get<int64_t>();
  EXPECT_EQ(bytes.size(),
            sizeof(float) * static_cast<size_t>(g.rows * g.cols + g.cols * g.cols + g.cols));
  g.all.resize(bytes.size() / sizeof(float));
  std::memcpy(g.all.data(), bytes.data(), bytes.size());
  return g;
}

}  // namespace compressd::engine::testing
