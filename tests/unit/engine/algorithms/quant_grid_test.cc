#include "workers/engine/algorithms/quant_grid.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
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

// f is an fp16 value (11 significant bits, or a multiple of 2^-24).
bool IsHalf(float f) {
  int e = 0;
  const float m = std::frexp(f, &e);
  const float n = e - 1 >= -14 ? std::ldexp(m, 11) : std::ldexp(f, 24);
  return n == std::floor(n);
}

// scale_bits: every super-group of 256 inputs of a row has one fp16 step d
// (the smallest >= its largest scale / smax) and its groups' scales are
// d * sc with sc in [1, smax]; the largest one gets sc = smax exactly; an
// all-zero group gets d and stays 0. Rows of 576: two whole super-groups and
// a part of one.
TEST(QuantGridTest, ScaleBitsPutEachSuperGroupsScalesOnOneLattice) {
  const int64_t rows = 6, cols = 576;
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(rows * cols);
  for (float& v : w) v = normal(rng);
  for (int64_t c = 16; c < 32; ++c) w[c] = 0.0f;  // row 0, group 1: all zero
  for (int scale_bits : {6, 8}) {
    std::vector<float> x = w;
    const int smax = (1 << (scale_bits - 1)) - 1;
    absl::StatusOr<QuantizedTensor> q =
        QuantizeRtn(x.data(), rows, cols, QuantGrid{3, 16, true, scale_bits}, "t");
    ASSERT_TRUE(q.ok()) << q.status();
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g0 = 0; g0 < q->groups; g0 += 16) {
        const int64_t g1 = std::min<int64_t>(q->groups, g0 + 16);
        float s_max = 0.0f;
        for (int64_t g = g0; g < g1; ++g) s_max = std::max(s_max, q->scales[r * q->groups + g]);
        const float d = s_max / static_cast<float>(smax);  // exact when sc_max = smax
        ASSERT_TRUE(IsHalf(d)) << d;
        for (int64_t g = g0; g < g1; ++g) {
          const float s = q->scales[r * q->groups + g];
          const float sc = std::nearbyint(s / d);
          ASSERT_TRUE(sc >= 1.0f && sc <= static_cast<float>(smax) && d * sc == s)
              << "row " << r << " group " << g << ": " << s << " = " << d << " * " << s / d;
        }
      }
    }
    float row0_max = 0.0f;
    for (int64_t g = 0; g < 16; ++g) row0_max = std::max(row0_max, q->scales[g]);
    EXPECT_EQ(q->scales[1], row0_max / static_cast<float>(smax));  // the all-zero group: sc = 1
    for (int64_t c = 16; c < 32; ++c) EXPECT_EQ(x[c], 0.0f);
    std::vector<float> deq(rows * cols);
    q->DequantizeTo(deq.data());
    EXPECT_EQ(deq, x);
  }
}

TEST(QuantGridTest, ScaleBitsNeedSymmetricGroupsThatDivideTheSuperGroup) {
  EXPECT_TRUE(ValidateGrid({3, 16, true, 6}, "t").ok());
  EXPECT_TRUE(ValidateGrid({6, 256, true, 8}, "t").ok());
  for (const QuantGrid& bad : {QuantGrid{3, 16, false, 6}, QuantGrid{3, 48, true, 6},
                               QuantGrid{3, -1, true, 6}, QuantGrid{3, 16, true, 1},
                               QuantGrid{3, 16, true, 9}}) {
    const absl::Status s = ValidateGrid(bad, "blk.0.w");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("blk.0.w: scale_bits"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace compressd::engine
