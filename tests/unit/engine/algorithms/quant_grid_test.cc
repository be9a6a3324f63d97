#include "workers/engine/algorithms/quant_grid.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/algorithms/rtn.h"

namespace compressd::engine {
namespace {

TEST(QuantGridTest, AsymmetricMinMax) {
  const std::vector<float> x = {-1.0f, 0.5f, 2.0f};
  const GridParam p = FindGridParam(x.data(), 3, nullptr, 4, /*symmetric=*/false);
  EXPECT_FLOAT_EQ(p.scale, 3.0f / 15.0f);
  EXPECT_EQ(p.zero, 5.0f);  // round(1 / 0.2)
  EXPECT_EQ(QuantizeCode(-1.0f, p, 15), 0.0f);
  EXPECT_EQ(QuantizeCode(2.0f, p, 15), 15.0f);
  EXPECT_EQ(QuantizeCode(100.0f, p, 15), 15.0f);  // clamped
}

TEST(QuantGridTest, SymmetricUsesMaxAbsAndMidZero) {
  const std::vector<float> x = {-3.0f, 1.0f};
  const GridParam p = FindGridParam(x.data(), 2, nullptr, 3, /*symmetric=*/true);
  EXPECT_FLOAT_EQ(p.scale, 6.0f / 7.0f);
  EXPECT_EQ(p.zero, 4.0f);
  // Positive-only groups are symmetric too.
  const std::vector<float> y = {0.5f, 2.0f};
  const GridParam q = FindGridParam(y.data(), 2, nullptr, 3, true);
  EXPECT_FLOAT_EQ(q.scale, 4.0f / 7.0f);
}

TEST(QuantGridTest, ZeroIsExactOnEveryGrid) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool sym : {false, true}) {
      for (int trial = 0; trial < 50; ++trial) {
        std::vector<float> x(16);
        for (float& v : x) v = normal(rng) + (trial % 3 == 0 ? 3.0f : 0.0f);
        const GridParam p = FindGridParam(x.data(), 16, nullptr, bits, sym);
        EXPECT_EQ(Dequantize(QuantizeCode(0.0f, p, MaxQ(bits)), p), 0.0f);
        EXPECT_EQ(Dequantize(QuantizeCode(-0.0f, p, MaxQ(bits)), p), 0.0f);
      }
    }
  }
}

TEST(QuantGridTest, PrunedEntriesCountAsZeroAndEmptyGroupGetsUnitRange) {
  const std::vector<float> x = {5.0f, -1.0f, 1.0f};
  const std::vector<uint8_t> pruned = {1, 0, 0};
  const GridParam p = FindGridParam(x.data(), 3, pruned.data(), 2, false);
  EXPECT_FLOAT_EQ(p.scale, 2.0f / 3.0f);
  const std::vector<float> zeros = {0.0f, 0.0f};
  const GridParam z = FindGridParam(zeros.data(), 2, nullptr, 4, false);
  EXPECT_FLOAT_EQ(z.scale, 2.0f / 15.0f);
}

TEST(QuantGridTest, RoundsHalfToEven) {
  GridParam p;
  p.scale = 1.0f;
  p.zero = 8.0f;
  EXPECT_EQ(QuantizeCode(0.5f, p, 15), 8.0f);
  EXPECT_EQ(QuantizeCode(1.5f, p, 15), 10.0f);
  EXPECT_EQ(QuantizeCode(-2.5f, p, 15), 6.0f);
}

TEST(QuantGridTest, ValidateRejectsBadBitsAndGroups) {
  EXPECT_EQ(ValidateGrid({1, -1, true}, "t").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGrid({9, -1, true}, "t").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateGrid({4, 0, true}, "t").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ValidateGrid({4, -2, true}, "layers.0.q").message().find("layers.0.q"),
            std::string::npos);
  EXPECT_TRUE(ValidateGrid({8, 128, false}, "t").ok());
}

TEST(RtnTest, NearestGridValueAndDequantizeRoundTrip) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t rows = 5, cols = 70;
  std::vector<float> w(rows * cols);
  for (float& v : w) v = normal(rng);
  w[3] = 0.0f;
  const std::vector<float> original = w;
  auto q = QuantizeRtn(w.data(), rows, cols, {3, 32, false}, "t");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->groups, 3);  // 32 + 32 + 6
  EXPECT_EQ(w[3], 0.0f);
  std::vector<float> deq(rows * cols);
  q->DequantizeTo(deq.data());
  EXPECT_EQ(deq, w);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t k = r * q->groups + c / 32;
      const float s = q->scales[k];
      // Nearest grid value: error at most half a step (inside the range).
      EXPECT_LE(std::fabs(w[r * cols + c] - original[r * cols + c]), 0.5f * s + 1e-6f);
      EXPECT_LE(q->codes[r * cols + c], 7);
    }
  }
  EXPECT_EQ(QuantizeRtn(w.data(), rows, cols, {4, 0, false}, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine
