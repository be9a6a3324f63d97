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

// Asymmetric scale_bits (Q2_K / Q4_K / Q5_K): per super-group the scales are
// d * sc, sc in [1, 2^b - 1], and each group's min scale * zero is dmin * m,
// m in [0, 2^b - 1], for fp16 d and dmin (the largest scale gets sc = smax);
// zeros are fractional; codes are the nearest grid values (round(x / scale +
// zero)); an all-zero group gets zero 0 and stays exactly 0.
TEST(QuantGridTest, AsymmetricScaleBitsPutScalesAndMinsOnTwoLattices) {
  const int64_t rows = 5, cols = 576;
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.01f, 0.02f);
  std::vector<float> w(rows * cols);
  for (float& v : w) v = normal(rng);
  for (int64_t c = 32; c < 64; ++c) w[c] = 0.0f;  // row 0, an all-zero group
  int fractional = 0;
  for (const QuantGrid& grid : {QuantGrid{2, 16, false, 4}, QuantGrid{4, 32, false, 6}}) {
    std::vector<float> x = w;
    const int smax = (1 << grid.scale_bits) - 1, maxq = MaxQ(grid.bits);
    absl::StatusOr<QuantizedTensor> q = QuantizeRtn(x.data(), rows, cols, grid, "t");
    ASSERT_TRUE(q.ok()) << q.status();
    const int64_t per = 256 / grid.group_size;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t g0 = 0; g0 < q->groups; g0 += per) {
        const int64_t g1 = std::min<int64_t>(q->groups, g0 + per);
        float s_max = 0.0f, m_max = 0.0f;
        for (int64_t g = g0; g < g1; ++g) {
          s_max = std::max(s_max, q->scales[r * q->groups + g]);
          m_max = std::max(m_max, q->scales[r * q->groups + g] * q->zeros[r * q->groups + g]);
        }
        const float d = s_max / static_cast<float>(smax);
        ASSERT_TRUE(IsHalf(d)) << d;
        for (int64_t g = g0; g < g1; ++g) {
          const float s = q->scales[r * q->groups + g], z = q->zeros[r * q->groups + g];
          const float sc = std::nearbyint(s / d);
          ASSERT_TRUE(sc >= 1.0f && sc <= static_cast<float>(smax) && d * sc == s) << s;
          // The min: a multiple m in [0, smax] of one step m_max / k per super-group, up to
          // float roundings (that the step is fp16 shows in the exact Q2_K/Q4_K encoding).
          bool on_lattice = m_max == 0.0f;
          for (int k = smax; k >= 1 && !on_lattice; --k) {
            bool all = true;
            const float step = m_max / static_cast<float>(k);
            for (int64_t h = g0; h < g1 && all; ++h) {
              const float mh = q->scales[r * q->groups + h] * q->zeros[r * q->groups + h];
              const float m = std::nearbyint(mh / step);
              all = m >= 0.0f && m <= smax && std::fabs(step * m - mh) <= 1e-5f * m_max;
            }
            on_lattice = all;
          }
          EXPECT_TRUE(on_lattice) << "row " << r << " group " << g;
          fractional += z != std::nearbyint(z);
          for (int64_t c = g * grid.group_size; c < (g + 1) * grid.group_size; ++c) {
            const float code = static_cast<float>(q->codes[r * cols + c]);
            const float err = std::fabs(w[r * cols + c] - s * (code - z));
            for (float other : {code - 1.0f, code + 1.0f}) {
              if (other < 0.0f || other > static_cast<float>(maxq)) continue;
              EXPECT_LE(err, std::fabs(w[r * cols + c] - s * (other - z)) * (1.0f + 1e-6f))
                  << "row " << r << " col " << c;
            }
          }
        }
      }
    }
    EXPECT_EQ(q->zeros[2 * 16 / grid.group_size], 0.0f);
    for (int64_t c = 32; c < 64; ++c) EXPECT_EQ(x[c], 0.0f);
  }
  EXPECT_GT(fractional, 100);
}

TEST(QuantGridTest, ScaleBitsNeedGroupsThatDivideTheSuperGroup) {
  EXPECT_TRUE(ValidateGrid({3, 16, true, 6}, "t").ok());
  EXPECT_TRUE(ValidateGrid({6, 256, true, 8}, "t").ok());
  EXPECT_TRUE(ValidateGrid({2, 16, false, 4}, "t").ok());
  for (const QuantGrid& bad :
       {QuantGrid{3, 48, false, 6}, QuantGrid{3, 48, true, 6}, QuantGrid{3, -1, true, 6},
        QuantGrid{3, 16, true, 1}, QuantGrid{3, 16, true, 9}}) {
    const absl::Status s = ValidateGrid(bad, "blk.0.w");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("blk.0.w: scale_bits"), std::string::npos) << s.message();
  }
}

// On an integer zero, QuantizeCode is round(x / scale) + zero exactly (no
// rounding of the sum); on a fractional one, round(x / scale + zero).
TEST(QuantGridTest, QuantizeCodeRoundsOnceWithFractionalZeros) {
  const GridParam integer{0.5f, 8.0f};
  EXPECT_EQ(QuantizeCode(0.75f, integer, 15), 10.0f);  // 1.5 -> 2 (half to even), + 8
  EXPECT_EQ(QuantizeCode(1.25f, integer, 15), 10.0f);  // 2.5 -> 2
  const GridParam frac{0.5f, 1.25f};
  EXPECT_EQ(QuantizeCode(0.0f, frac, 3), 1.0f);   // 1.25 -> 1
  EXPECT_EQ(QuantizeCode(0.2f, frac, 3), 2.0f);   // 0.4 + 1.25 = 1.65 -> 2
  EXPECT_EQ(QuantizeCode(-1.0f, frac, 3), 0.0f);  // -0.75 -> clamped 0
  EXPECT_EQ(QuantizeCode(5.0f, frac, 3), 3.0f);   // clamped
  EXPECT_EQ(Dequantize(2.0f, frac), 0.375f);
}

}  // namespace
}  // namespace compressd::engine
