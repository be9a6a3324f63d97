// ggml block quantizers: round trips through our dequantizer within per-type
// bounds, exact zeros where the format has them, argument checks, and golden
// fixtures (tests/golden/ggml_quantize_fixtures.py): byte equality with
// gguf-py / ggml for the legacy types, error no worse than ggml's reference
// k-quant quantizers.
#include "workers/engine/export/ggml_quantize.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "workers/engine/model/gguf/dequant.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using ::testing::HasSubstr;

const GgmlType kTypes[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kQ8_0, GgmlType::kQ4_0,
                           GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ2_K,
                           GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K};

// Rows of 512: Gaussian at several scales, heavy-tailed, and a mix of tiny and large blocks.
std::vector<float> TestRows(int rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::student_t_distribution<float> heavy(3.0f);
  std::vector<float> x(static_cast<size_t>(rows) * 512);
  for (int r = 0; r < rows; ++r) {
    const float scale = std::pow(10.0f, -3.0f + 0.5f * static_cast<float>(r % 7));
    for (int c = 0; c < 512; ++c) {
      float v = (r % 3 == 2 ? heavy(rng) : normal(rng)) * scale;
      if (r % 5 == 4 && c >= 256) v *= 1e-3f;  // a quiet half row
      x[static_cast<size_t>(r) * 512 + c] = v;
    }
  }
  return x;
}

// fp16 rounding error of v: relative 2^-11, or half the subnormal step.
float HalfErr(float v) {
  return std::max(std::fabs(v) * std::ldexp(1.0f, -11), std::ldexp(1.0f, -25));
}

// Largest |error| a legacy / float type allows in one block of x (n
// elements): the rounding step plus the fp16 rounding of d (times the largest
// code) and of m; -1 for the k-quants.
float LegacyBound(GgmlType type, const float* x, int n) {
  float lo = x[0], hi = x[0], amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    amax = std::max(amax, std::fabs(x[i]));
  }
  const float slack = 1.0f + 1e-5f;
  switch (type) {
    case GgmlType::kF32:
      return 0.0f;
    case GgmlType::kF16:
      return HalfErr(amax);
    case GgmlType::kQ8_0:
      return amax / 127.0f / 2.0f * slack + 127.0f * HalfErr(amax / 127.0f);
    case GgmlType::kQ4_0:
      return amax / 8.0f * slack + 8.0f * HalfErr(amax / 8.0f);
    case GgmlType::kQ5_0:
      return amax / 16.0f * slack + 16.0f * HalfErr(amax / 16.0f);
    case GgmlType::kQ4_1: {
      const float d = (hi - lo) / 15.0f;
      return d / 2.0f * slack + 15.0f * HalfErr(d) + HalfErr(lo);
    }
    case GgmlType::kQ5_1: {
      const float d = (hi - lo) / 31.0f;
      return d / 2.0f * slack + 31.0f * HalfErr(d) + HalfErr(lo);
    }
    default:
      return -1.0f;
  }
}

// Relative RMS error the k-quants stay under per super-block, on Gaussian rows
// (ggml's reference averages about 0.072 / 0.036 / 0.018) and heavy-tailed ones.
double KQuantLimit(GgmlType type, bool heavy_tailed) {
  switch (type) {
    case GgmlType::kQ2_K:
      return heavy_tailed ? 0.36 : 0.31;
    case GgmlType::kQ3_K:
      return heavy_tailed ? 0.24 : 0.19;
    case GgmlType::kQ4_K:
      return heavy_tailed ? 0.11 : 0.08;
    case GgmlType::kQ5_K:
      return heavy_tailed ? 0.055 : 0.04;
    default:
      return heavy_tailed ? 0.028 : 0.022;  // Q6_K
  }
}

class QuantizeTypeTest : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantizeTypeTest, RoundTripWithinBounds) {
  const GgmlType type = GetParam();
  const int rows = 14;
  const std::vector<float> x = TestRows(rows, 7);
  absl::StatusOr<std::string> q = QuantizeRows(type, x.data(), rows, 512, "t");
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->size(), rows * *engine::GgmlRowBytes(type, 512));
  const std::vector<float> y = testing_export::Dequant(type, *q, x.size());
  const int block = type == GgmlType::kF32 || type == GgmlType::kF16 ? 1 : 32;
  if (LegacyBound(type, x.data(), 1) >= 0.0f) {
    for (size_t b = 0; b < x.size(); b += block) {
      const float bound = LegacyBound(type, &x[b], block);
      for (int i = 0; i < block; ++i) {
        ASSERT_LE(std::fabs(y[b + i] - x[b + i]), bound) << "element " << b + i;
      }
    }
    return;
  }
  for (int r = 0; r < rows; ++r) {  // k-quants: per 256-element super-block
    for (int s = 0; s < 2; ++s) {
      const size_t off = static_cast<size_t>(r) * 512 + 256 * s;
      const double rel = testing_export::RelRmse(&x[off], &y[off], 256);
      EXPECT_LT(rel, KQuantLimit(type, r % 3 == 2)) << "row " << r << " super-block " << s;
    }
  }
}

TEST_P(QuantizeTypeTest, ZeroRowsStayZero) {
  const std::vector<float> x(512, 0.0f);
  absl::StatusOr<std::string> q = QuantizeRows(GetParam(), x.data(), 1, 512, "t");
  ASSERT_TRUE(q.ok()) << q.status();
  for (float v : testing_export::Dequant(GetParam(), *q, x.size())) ASSERT_EQ(v, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QuantizeTypeTest, ::testing::ValuesIn(kTypes),
                         [](const auto& info) { return engine::GgmlTypeName(info.param); });

TEST(QuantizeRowsTest, PrunedWeightsStayExactlyZeroInSymmetricTypes) {
  std::vector<float> x = TestRows(4, 11);
  for (size_t i = 0; i < x.size(); i += 2) x[i] = 0.0f;  // half the weights pruned
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
                        GgmlType::kQ5_0, GgmlType::kQ3_K, GgmlType::kQ6_K}) {
    absl::StatusOr<std::string> q = QuantizeRows(type, x.data(), 4, 512, "t");
    ASSERT_TRUE(q.ok()) << q.status();
    const std::vector<float> y = testing_export::Dequant(type, *q, x.size());
    for (size_t i = 0; i < x.size(); i += 2) {
      ASSERT_EQ(y[i], 0.0f) << engine::GgmlTypeName(type) << " element " << i;
    }
  }
}

TEST(QuantizeRowsTest, RejectsRowsTheBlockDoesNotDivide) {
  const std::vector<float> x(576, 1.0f);
  absl::StatusOr<std::string> q = QuantizeRows(GgmlType::kQ4_K, x.data(), 1, 576, "blk.0.attn_q");
  ASSERT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), HasSubstr("blk.0.attn_q"));
  EXPECT_THAT(q.status().message(), HasSubstr("multiple of 256"));
  EXPECT_TRUE(QuantizeRows(GgmlType::kQ4_0, x.data(), 1, 576, "t").ok());
  EXPECT_FALSE(QuantizeRows(GgmlType::kQ8_0, x.data(), 1, 40, "t").ok());
}

TEST(QuantizeRowsTest, RejectsNonFiniteAndOutOfRangeValues) {
  std::vector<float> x(64, 0.5f);
  x[37] = std::nanf("");
  absl::StatusOr<std::string> q = QuantizeRows(GgmlType::kQ8_0, x.data(), 2, 32, "w");
  ASSERT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), HasSubstr("w: value nan at row 1, column 5 is not finite"));
  x[37] = INFINITY;
  EXPECT_FALSE(QuantizeRows(GgmlType::kF32, x.data(), 2, 32, "w").ok());
  x[37] = 1e6f;  // finite, but beyond what fp16 scales / values hold
  q = QuantizeRows(GgmlType::kQ4_0, x.data(), 2, 32, "w");
  ASSERT_FALSE(q.ok());
  EXPECT_THAT(q.status().message(), HasSubstr("outside the fp16 range"));
  EXPECT_TRUE(QuantizeRows(GgmlType::kF32, x.data(), 2, 32, "w").ok());
}

TEST(QuantizeRowsTest, ParsesTypeNames) {
  EXPECT_EQ(*ParseQuantizeType("q4_k"), GgmlType::kQ4_K);
  EXPECT_EQ(*ParseQuantizeType("Q8_0"), GgmlType::kQ8_0);
  EXPECT_EQ(*ParseQuantizeType("f16"), GgmlType::kF16);
  EXPECT_EQ(*ParseQuantizeType("q3_k"), GgmlType::kQ3_K);
  EXPECT_FALSE(ParseQuantizeType("IQ2_XS").ok());
  EXPECT_FALSE(ParseQuantizeType("auto").ok());
  EXPECT_FALSE(CanQuantize(GgmlType::kBF16));
  const std::vector<float> x(32, 1.0f);
  EXPECT_EQ(QuantizeRows(GgmlType::kQ8_1, x.data(), 1, 32, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(QuantizeGoldenTest, LegacyBytesEqualGgufPy) {
  const testing_export::QuantizeFixture f = testing_export::ReadQuantizeFixture();
  ASSERT_FALSE(f.outputs.empty());
  int compared = 0;
  for (const testing_export::QuantizeOutput& o : f.outputs) {
    if (o.source != 0) continue;
    const testing_export::QuantizeInput& in = f.inputs.at(o.input);
    absl::StatusOr<std::string> q =
        QuantizeRows(o.type, in.values.data(), in.rows, in.row_len, in.name);
    ASSERT_TRUE(q.ok()) << q.status();
    EXPECT_TRUE(*q == o.bytes) << in.name << " " << engine::GgmlTypeName(o.type) << ": "
                               << testing_export::FirstDifference(*q, o.bytes);
    ++compared;
  }
  EXPECT_EQ(compared, 5 * static_cast<int>(f.inputs.size()));
}

TEST(QuantizeGoldenTest, KQuantErrorOnParWithGgml) {
  const testing_export::QuantizeFixture f = testing_export::ReadQuantizeFixture();
  int compared = 0;
  for (const testing_export::QuantizeOutput& o : f.outputs) {
    if (o.source != 1) continue;
    const testing_export::QuantizeInput& in = f.inputs.at(o.input);
    const size_t n = in.values.size();
    absl::StatusOr<std::string> q =
        QuantizeRows(o.type, in.values.data(), in.rows, in.row_len, in.name);
    ASSERT_TRUE(q.ok()) << q.status();
    const double ours =
        testing_export::RelRmse(in.values.data(), testing_export::Dequant(o.type, *q, n).data(), n);
    const double ggml = testing_export::RelRmse(
        in.values.data(), testing_export::Dequant(o.type, o.bytes, n).data(), n);
    EXPECT_LE(ours, 1.03 * ggml + 1e-6)
        << in.name << " " << engine::GgmlTypeName(o.type) << ": ours " << ours << ", ggml " << ggml;
    ++compared;
  }
  EXPECT_EQ(compared, 5 * static_cast<int>(f.inputs.size()));
}

}  // namespace
}  // namespace compressd::engine
