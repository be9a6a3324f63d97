// AWQ's clipping search (calib/awq_clip.h) against the independent PyTorch
// reference of tests/golden/awq_fixtures.py (clip_search: errors from the
// calibration activations X in float64, where we use H = 2 X X^T / n in
// float32) on real SmolLM2 groups, and its guarantees.
#include "workers/engine/calib/awq_clip.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/calib/awq_golden.h"

namespace compressd::engine {
namespace {

class AwqClipGoldenTest : public ::testing::TestWithParam<const char*> {};

// The same ratio for >= 99% of (row, group) pairs (the rest are near-ties
// between H in float32 and X in float64), the clipped weights equal where the
// ratio agrees, and the relative errors within 1e-3.
TEST_P(AwqClipGoldenTest, SearchMatchesTheReference) {
  const std::string stem = std::string("awq_") + GetParam();
  const testing::AwqGolden golden = testing::LoadAwqGolden(GetParam());
  const nlohmann::json& fix = golden.fix;
  const int64_t cols = golden.cols, rows = golden.rows;
  const std::vector<float>& all = golden.all;
  const float* h = golden.h();
  ASSERT_FALSE(fix["clip_configs"].empty());
  for (const nlohmann::json& c : fix["clip_configs"]) {
    AwqClipOptions o;
    o.grid = QuantGrid{c["bits"], c["group_size"], c["symmetric"], 0};
    o.grid_points = c["grid_points"];
    o.max_shrink = c["max_shrink"];
    o.threads = 2;
    std::vector<float> w(all.begin(), all.begin() + rows * cols);
    absl::StatusOr<AwqClipResult> r = AwqClip(w.data(), rows, cols, h, o, stem);
    ASSERT_TRUE(r.ok()) << r.status();
    const std::vector<float> ref = c["ratio"];
    ASSERT_EQ(r->ratio.size(), ref.size());
    const int64_t g = o.grid.group_size > 0 ? o.grid.group_size : cols;
    const int64_t groups = static_cast<int64_t>(ref.size()) / rows;
    int64_t same = 0, shrunk = 0;
    for (size_t k = 0; k < ref.size(); ++k) {
      same += r->ratio[k] == ref[k];
      shrunk += ref[k] < 1.0f;
      if (r->ratio[k] != ref[k]) continue;
      const int64_t row = static_cast<int64_t>(k) / groups,
                    c0 = (static_cast<int64_t>(k) % groups) * g;
      float a = 0.0f;
      for (int64_t j = c0; j < std::min(c0 + g, cols); ++j)
        a = std::max(a, std::fabs(all[row * cols + j]));
      const float lim = a * ref[k];
      for (int64_t j = c0; j < std::min(c0 + g, cols); ++j) {
        ASSERT_EQ(w[row * cols + j], std::min(std::max(all[row * cols + j], -lim), lim));
      }
    }
    const std::string what = stem + " " + c["bits"].dump() + "-bit g" + c["group_size"].dump();
    EXPECT_GE(static_cast<double>(same) / ref.size(), 0.99) << what;
    EXPECT_GT(shrunk, 0) << what << ": the reference clips nothing; the test would not see it";
    EXPECT_NEAR(r->error_unclipped, c["error_unclipped"].get<double>(),
                1e-3 * c["error_unclipped"].get<double>())
        << what;
    EXPECT_NEAR(r->error, c["error"].get<double>(), 1e-3 * c["error"].get<double>()) << what;
    EXPECT_LT(r->error, r->error_unclipped) << what;
    std::printf("%s: %.1f%% of pairs clipped, error %.5f -> %.5f (reference %.5f -> %.5f)\n",
                what.c_str(), 100.0 * r->clipped, r->error_unclipped, r->error,
                c["error_unclipped"].get<double>(), c["error"].get<double>());
  }
}

INSTANTIATE_TEST_SUITE_P(RealLayers, AwqClipGoldenTest, ::testing::Values("l0_qkv", "l5_down"));

// A row whose range is set by one outlier loses the most to rounding: shrinking
// its range (the outlier clamped) is better on a 3-bit grid, so it is clipped;
// every clamped weight lies within its ratio's limit, unclipped rows are
// unchanged, and the error never grows. Bad options are INVALID_ARGUMENT
// naming the tensor.
TEST(AwqClipTest, OutlierRowsAreClippedAndBadOptionsAreErrors) {
  const int64_t rows = 8, cols = 128;
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(rows * cols);
  for (float& v : w) v = normal(rng);
  for (int64_t r = 0; r < rows; r += 2) w[r * cols + 5] = 0.1f;  // even rows: one outlier
  std::vector<float> h(cols * cols, 0.0f);
  for (int64_t i = 0; i < cols; ++i) h[i * cols + i] = 1.0f;
  AwqClipOptions o;
  o.grid = QuantGrid{3, -1, true, 0};
  std::vector<float> x = w;
  absl::StatusOr<AwqClipResult> r = AwqClip(x.data(), rows, cols, h.data(), o, "blk.0.w");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(r->error, r->error_unclipped);
  for (int64_t row = 0; row < rows; ++row) {
    const float ratio = r->ratio[row];
    if (row % 2 == 0) {
      EXPECT_LT(ratio, 1.0f) << "row " << row;
    }
    float a = 0.0f;
    for (int64_t c = 0; c < cols; ++c) a = std::max(a, std::fabs(w[row * cols + c]));
    for (int64_t c = 0; c < cols; ++c) {
      const float v = w[row * cols + c];
      EXPECT_EQ(x[row * cols + c], std::min(std::max(v, -a * ratio), a * ratio));
    }
  }
  o.max_shrink = 1.0;
  EXPECT_EQ(AwqClip(x.data(), rows, cols, h.data(), o, "blk.0.w").status().code(),
            absl::StatusCode::kInvalidArgument);
  o.max_shrink = 0.5;
  x[5] = std::nanf("");
  const absl::Status s = AwqClip(x.data(), rows, cols, h.data(), o, "blk.0.w").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("blk.0.w"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace compressd::engine
