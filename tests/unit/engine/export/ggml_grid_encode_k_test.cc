// Exact GGUF encoding of grids whose scales lie on the k-quant lattice
// (QuantGrid::scale_bits): RTN and GPTQ codes written as Q3_K / Q6_K
// dequantize (by our reader, golden-checked bit for bit against gguf-py) to
// exactly scale * (code - zero), as Q2_K / Q4_K / Q5_K (asymmetric lattices:
// scales and mins) up to float roundings; grids without the lattice, or rows
// that 256 does not divide, are not taken for k-quants.
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/engine/export/export_testing.h"
#include "workers/engine/algorithms/gptq.h"
#include "workers/engine/algorithms/rtn.h"
#include "workers/engine/export/ggml_grid_encode.h"

namespace compressd::engine {
namespace {

using engine::GgmlType;
using engine::QuantGrid;
using engine::QuantizedTensor;

std::vector<float> RandomWeights(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> w(rows * cols);
  for (float& v : w) v = (rng() % 5 == 0) ? 0.0f : normal(rng);
  for (int64_t c = 0; c < 16; ++c) w[c] = 0.0f;  // an all-zero sub-block
  return w;
}

bool HasMin(GgmlType type) {
  return type == GgmlType::kQ2_K || type == GgmlType::kQ4_K || type == GgmlType::kQ5_K;
}

// q's codes as `type` read back equal the grid values: bit for bit for the
// d-only types; for the types with a min (d * sc * q - dmin * m against
// scale * (code - zero)), up to float roundings.
void ExpectBitExact(const QuantizedTensor& q, GgmlType type) {
  absl::StatusOr<std::string> bytes = EncodeGridExact(q, type, "w");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  std::vector<float> want(q.rows * q.cols);
  q.DequantizeTo(want.data());
  const std::vector<float> got = testing_export::Dequant(type, *bytes, want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (!HasMin(type)) {
      ASSERT_EQ(got[i], want[i]) << "element " << i;
      continue;
    }
    const int64_t g = (i / q.cols) * q.groups + q.group_index[i % q.cols];
    const float tol = 4e-7f * q.scales[g] * (q.codes[i] + std::fabs(q.zeros[g]) + 1.0f);
    ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
  }
}

struct Case {
  int bits;
  int64_t group;
  int scale_bits;
  GgmlType expected;
  bool symmetric = true;
};

class LatticeGridTest : public ::testing::TestWithParam<Case> {};

TEST_P(LatticeGridTest, RtnCodesAreWrittenBitExact) {
  const Case c = GetParam();
  const int64_t rows = 6, cols = 512;
  std::vector<float> w = RandomWeights(rows, cols, 7);
  absl::StatusOr<QuantizedTensor> q =
      QuantizeRtn(w.data(), rows, cols, QuantGrid{c.bits, c.group, c.symmetric, c.scale_bits}, "w");
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(ExactGridType(*q), c.expected);
  ExpectBitExact(*q, c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Grids, LatticeGridTest,
    ::testing::Values(
        Case{3, 16, 6, GgmlType::kQ3_K}, Case{2, 16, 6, GgmlType::kQ3_K},
        Case{3, 32, 6, GgmlType::kQ3_K}, Case{3, 64, 4, GgmlType::kQ3_K},
        Case{6, 16, 8, GgmlType::kQ6_K}, Case{5, 16, 6, GgmlType::kQ6_K},
        Case{6, 128, 8, GgmlType::kQ6_K},
        // symmetric 2-bit with sc <= 7: a min of d * 2 * sc fits Q2_K
        Case{2, 16, 4, GgmlType::kQ2_K},
        // asymmetric: scales and mins on their lattices
        Case{2, 16, 4, GgmlType::kQ2_K, false}, Case{2, 64, 3, GgmlType::kQ2_K, false},
        Case{3, 32, 6, GgmlType::kQ4_K, false}, Case{4, 32, 6, GgmlType::kQ4_K, false},
        Case{4, 128, 5, GgmlType::kQ4_K, false}, Case{5, 32, 6, GgmlType::kQ5_K, false},
        // an EvoPress allocation on {group_size: 32, asymmetric, scale_bits: 4}
        Case{2, 32, 4, GgmlType::kQ2_K, false}, Case{3, 32, 4, GgmlType::kQ4_K, false},
        Case{5, 32, 4, GgmlType::kQ5_K, false},
        // 2-bit asymmetric with 6-bit scales: too many for Q2_K's 4 bits
        Case{2, 32, 6, GgmlType::kQ4_K, false}));

TEST(LatticeGridTest, GptqCodesAreWrittenBitExactWithStaticAndSweepGroups) {
  const int64_t rows = 8, cols = 512;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> x(cols * 64);  // inputs: H = X X^T / n, full rank
  for (float& v : x) v = normal(rng);
  std::vector<float> h(cols * cols, 0.0f);
  for (int64_t i = 0; i < cols; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < 64; ++k) s += x[i * 64 + k] * x[j * 64 + k];
      h[i * cols + j] = s / 64.0f + (i == j ? 1.0f : 0.0f);
    }
  }
  const std::pair<QuantGrid, GgmlType> grids[] = {{QuantGrid{3, 16, true, 6}, GgmlType::kQ3_K},
                                                  {QuantGrid{2, 16, false, 4}, GgmlType::kQ2_K},
                                                  {QuantGrid{4, 32, false, 6}, GgmlType::kQ4_K}};
  for (const auto& [grid, type] : grids) {
    for (bool act_order : {true, false}) {
      std::vector<float> w = RandomWeights(rows, cols, 3);
      GptqOptions o;
      o.grid = grid;
      o.act_order = act_order;
      o.static_groups = act_order;  // false: groups (and super-group steps) chosen in the sweep
      absl::StatusOr<LayerSolveResult> r = Gptq(w.data(), rows, cols, h.data(), o, "w");
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_TRUE(r->quantized.has_value());
      EXPECT_EQ(ExactGridType(*r->quantized), type) << "act_order " << act_order;
      ExpectBitExact(*r->quantized, type);
    }
  }
}

TEST(LatticeGridTest, FloatScalesAndRowsOf576AreNotKQuants) {
  std::vector<float> w = RandomWeights(4, 512, 5);
  absl::StatusOr<QuantizedTensor> q = QuantizeRtn(w.data(), 4, 512, QuantGrid{3, 16, true}, "w");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ3_K));  // float scales
  EXPECT_EQ(ExactGridType(*q), std::nullopt);       // and groups of 16 split legacy blocks
  EXPECT_EQ(EncodeGridExact(*q, GgmlType::kQ3_K, "w").status().code(), absl::StatusCode::kNotFound);

  w = RandomWeights(4, 576, 5);  // SmolLM2's hidden size: 2.25 super-blocks
  q = QuantizeRtn(w.data(), 4, 576, QuantGrid{3, 32, true, 6}, "w");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ3_K));
  EXPECT_EQ(ExactGridType(*q), GgmlType::kQ4_0);  // still exact, as 32-element blocks

  w = RandomWeights(4, 512, 5);  // 4-bit codes do not fit Q3_K's [-4, 3]
  q = QuantizeRtn(w.data(), 4, 512, QuantGrid{4, 16, true, 6}, "w");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ3_K));
  EXPECT_EQ(ExactGridType(*q), GgmlType::kQ6_K);

  w = RandomWeights(4, 576, 5);  // an asymmetric lattice on rows of 576: Q4_1 (fp16 d and m)
  q = QuantizeRtn(w.data(), 4, 576, QuantGrid{4, 32, false, 6}, "w");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ4_K));
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ4_0));  // fractional zeros
  EXPECT_EQ(ExactGridType(*q), GgmlType::kQ4_1);
}

// Asymmetric grids with float scales (no lattice) are never taken for the
// k-quants with a min, and a grid whose mins are off any fp16 lattice is refused.
TEST(LatticeGridTest, MinTypesNeedBothLattices) {
  std::vector<float> w = RandomWeights(4, 512, 13);
  absl::StatusOr<QuantizedTensor> q = QuantizeRtn(w.data(), 4, 512, QuantGrid{4, 32, false}, "w");
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ4_K));
  EXPECT_EQ(ExactGridType(*q), GgmlType::kQ4_1);
  q = QuantizeRtn(w.data(), 4, 512, QuantGrid{4, 32, false, 6}, "w");
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(GridFitsType(*q, GgmlType::kQ4_K));
  q->zeros[1] *= 1.001f;  // the min of row 0, group 1 leaves the dmin lattice
  EXPECT_FALSE(GridFitsType(*q, GgmlType::kQ4_K));
  EXPECT_EQ(EncodeGridExact(*q, GgmlType::kQ4_K, "w").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace compressd::engine
