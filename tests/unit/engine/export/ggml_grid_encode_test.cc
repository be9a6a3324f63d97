// Exact GGUF encoding of quantization grids: which grids map to which types,
// and that the encoded blocks dequantize to scale * (code - zero) within the
// fp16 rounding of the scale (exact zeros for the d-only types).
#include "workers/engine/export/ggml_grid_encode.h"

#include <cmath>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "workers/engine/algorithms/rtn.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using engine::QuantGrid;
using engine::QuantizedTensor;
using ::testing::HasSubstr;

constexpr int64_t kRows = 12, kCols = 256;

// RTN on random weights (some pruned to exact zeros); `w` gets the grid values.
QuantizedTensor Rtn(int bits, bool symmetric, int64_t group, std::vector<float>* w,
                    unsigned seed = 3) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  w->assign(kRows * kCols, 0.0f);
  for (float& v : *w) v = (rng() % 4 == 0) ? 0.0f : normal(rng);
  absl::StatusOr<QuantizedTensor> q =
      engine::QuantizeRtn(w->data(), kRows, kCols, QuantGrid{bits, group, symmetric}, "w");
  EXPECT_TRUE(q.ok()) << q.status();
  return *std::move(q);
}

struct Case {
  int bits;
  bool symmetric;
  int64_t group;
  GgmlType expected;
};

class ExactGridTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExactGridTest, EncodesTheGridValuesWithinFp16RoundingOfTheScale) {
  const Case c = GetParam();
  std::vector<float> w;
  const QuantizedTensor q = Rtn(c.bits, c.symmetric, c.group, &w);
  ASSERT_EQ(ExactGridType(q), c.expected);
  absl::StatusOr<std::string> bytes = EncodeGridExact(q, c.expected, "w");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::vector<float> y = testing_export::Dequant(c.expected, *bytes, w.size());
  const bool has_min = c.expected == GgmlType::kQ4_1 || c.expected == GgmlType::kQ5_1;
  const float h = std::ldexp(1.0f, -11);
  for (int64_t r = 0; r < kRows; ++r) {
    for (int64_t col = 0; col < kCols; ++col) {
      const int64_t i = r * kCols + col, g = r * q.groups + q.group_index[col];
      const float s = q.scales[g], z = q.zeros[g], code = q.codes[i];
      ASSERT_EQ(w[i], s * (code - z));  // RTN's output is the grid
      if (!has_min) {
        ASSERT_LE(std::fabs(y[i] - w[i]), h * s * std::fabs(code - z) * 1.0001f) << i;
        if (code == z) {
          ASSERT_EQ(y[i], 0.0f) << i;
        }
      } else {
        ASSERT_LE(std::fabs(y[i] - w[i]), h * s * (code + 2.0f * z + 1.0f) * 1.0001f) << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Grids, ExactGridTest,
    ::testing::Values(Case{4, true, 32, GgmlType::kQ4_0}, Case{4, false, 32, GgmlType::kQ4_1},
                      Case{5, true, 32, GgmlType::kQ5_0}, Case{5, false, 32, GgmlType::kQ5_1},
                      Case{8, true, 32, GgmlType::kQ8_0}, Case{3, true, 32, GgmlType::kQ4_0},
                      Case{3, false, 32, GgmlType::kQ4_0}, Case{2, false, 32, GgmlType::kQ4_0},
                      Case{6, true, 32, GgmlType::kQ8_0}, Case{7, false, 32, GgmlType::kQ8_0},
                      Case{4, true, 128, GgmlType::kQ4_0}, Case{4, false, -1, GgmlType::kQ4_1},
                      Case{5, true, 64, GgmlType::kQ5_0}));

TEST(GridFitsTypeTest, WiderTypesHoldNarrowGridsButNotTheReverse) {
  std::vector<float> w;
  const QuantizedTensor q4 = Rtn(4, true, 32, &w);
  EXPECT_TRUE(GridFitsType(q4, GgmlType::kQ8_0));
  EXPECT_TRUE(GridFitsType(q4, GgmlType::kQ5_0));
  EXPECT_TRUE(GridFitsType(q4, GgmlType::kQ4_1));
  EXPECT_FALSE(GridFitsType(q4, GgmlType::kQ4_K));  // not a 32-element block type
  const QuantizedTensor q5 = Rtn(5, true, 32, &w);
  EXPECT_FALSE(GridFitsType(q5, GgmlType::kQ4_0));
  EXPECT_FALSE(GridFitsType(q5, GgmlType::kQ4_1));
}

TEST(GridFitsTypeTest, RejectsGroupsThatSplitBlocks) {
  std::vector<float> w;
  EXPECT_EQ(ExactGridType(Rtn(4, true, 16, &w)), std::nullopt);  // two grids per block
  QuantizedTensor act_order = Rtn(4, true, 32, &w);
  std::swap(act_order.group_index[3], act_order.group_index[40]);  // g_idx of an act-order run
  EXPECT_EQ(ExactGridType(act_order), std::nullopt);
  absl::StatusOr<std::string> bytes = EncodeGridExact(act_order, GgmlType::kQ4_0, "blk.3.up");
  ASSERT_EQ(bytes.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(bytes.status().message(), HasSubstr("blk.3.up"));
}

TEST(GridFitsTypeTest, RejectsScalesFp16CannotHoldPrecisely) {
  std::vector<float> w;
  QuantizedTensor q = Rtn(4, true, 32, &w);
  q.scales[5] = 1e-6f;  // an fp16 subnormal: rounding would be far above 2^-11
  EXPECT_EQ(ExactGridType(q), std::nullopt);
  q.scales[5] = 1e5f;  // beyond fp16
  EXPECT_EQ(ExactGridType(q), std::nullopt);
}

TEST(GridFitsTypeTest, EightBitAsymmetricFitsQ8_0OnlyWhenItsCodesDo) {
  std::vector<float> w;
  QuantizedTensor q = Rtn(8, false, 32, &w);
  for (float& z : q.zeros) z = 128.0f;  // every code - zero in [-128, 127]
  EXPECT_TRUE(GridFitsType(q, GgmlType::kQ8_0));
  q.zeros[0] = 0.0f;  // one group one-sided: codes far from its zero point
  for (int c = 0; c < 32; ++c) q.codes[c] = 200;
  EXPECT_FALSE(GridFitsType(q, GgmlType::kQ8_0));
  for (int c = 0; c < 32; ++c) q.codes[c] = 100;
  EXPECT_TRUE(GridFitsType(q, GgmlType::kQ8_0));
}

TEST(ValidateQuantizedTensorTest, RejectsInconsistentArrays) {
  std::vector<float> w;
  QuantizedTensor q = Rtn(4, true, 32, &w);
  q.codes.pop_back();
  absl::Status s = ValidateQuantizedTensor(q, "blk.0.q");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.q"));
  EXPECT_EQ(EncodeGridExact(q, GgmlType::kQ4_0, "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  q = Rtn(4, true, 32, &w);
  q.group_index[7] = 99;
  EXPECT_THAT(ValidateQuantizedTensor(q, "t").message(), HasSubstr("group_index[7] = 99"));
}

}  // namespace
}  // namespace compressd::engine
