// SpQR (algorithms/spqr.h): against tests/golden/spqr_fixtures.py (an
// independent PyTorch implementation from the paper) on real SmolLM2 layers,
// and its stored form: DequantizeTo rebuilds the weights exactly, the
// statistics and outliers are what spqr.h says, and the stored bits count.
#include "workers/engine/algorithms/spqr.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "workers/engine/algorithms/hessian.h"
#include "workers/engine/model/dtype.h"

namespace compressd::engine {
namespace {

using nlohmann::json;

SpqrOptions OptionsOf(const json& o) {
  SpqrOptions s;
  s.bits = o.at("bits").get<int>();
  s.group_size = o.at("group").get<int64_t>();
  s.stat_bits = o.at("stat_bits").get<int>();
  s.stat_group = o.at("stat_group").get<int64_t>();
  s.outlier_threshold =
      o.at("tau").is_null() ? std::numeric_limits<double>::infinity() : o.at("tau").get<double>();
  s.act_order = o.at("act_order").get<bool>();
  s.percdamp = o.at("percdamp").get<double>();
  s.threads = 2;
  return s;
}

template <typename T>
std::vector<T> Array(const std::string& blob, const json& entry, const char* what) {
  const int64_t n = entry.at("rows").get<int64_t>() * entry.at("cols").get<int64_t>();
  std::vector<T> v(n);
  std::memcpy(v.data(), blob.data() + entry.at("arrays").at(what).at("offset").get<size_t>(),
              n * sizeof(T));
  return v;
}

TEST(SpqrGoldenTest, MatchesPyTorchReferenceOnRealLayers) {
  const std::string stem = testing::SourceDir() + "/tests/golden/fixtures/spqr_expected";
  auto text = testing::ReadFile(stem + ".json");
  auto blob = testing::ReadFile(stem + ".bin");
  ASSERT_TRUE(text.ok() && blob.ok()) << "regenerate with tests/golden/spqr_fixtures.py";
  const json fixture = json::parse(*text);
  ASSERT_EQ(fixture.at("entries").size(), 6u);
  for (const json& e : fixture.at("entries")) {
    const std::string label =
        e.at("layer").get<std::string>() + " " + e.at("config").get<std::string>();
    auto g = testing::LoadGoldenLayer(e.at("layer").get<std::string>());
    ASSERT_TRUE(g.ok()) << g.status();
    testing::Layer l = g->layer;
    auto r = Spqr(l.w.data(), l.rows, l.cols, l.h.data(), OptionsOf(e.at("options")), label);
    ASSERT_TRUE(r.ok()) << r.status();
    const QuantizedTensor& q = *r->quantized;
    const auto want_codes = Array<uint8_t>(*blob, e, "codes");
    const auto want_w = Array<float>(*blob, e, "weights");
    const auto want_outliers = Array<uint8_t>(*blob, e, "outliers");
    std::vector<uint8_t> outliers(l.rows * l.cols, 0);
    for (int64_t row = 0; row < l.rows; ++row) {
      for (int32_t k = q.spqr->outlier_rows[row]; k < q.spqr->outlier_rows[row + 1]; ++k) {
        outliers[row * l.cols + q.spqr->outlier_cols[k]] = 1;
      }
    }
    // Identical when measured (and the error to 1e-8); the margins allow a
    // rounding or threshold comparison flipped by float32 sums in another
    // order (another BLAS), and its effect on later columns.
    EXPECT_GE(testing::Agreement(q.codes, want_codes), 0.999) << label;
    EXPECT_GE(testing::Agreement(outliers, want_outliers), 0.999) << label;
    const int64_t want_count = e.at("outlier_count").get<int64_t>();
    EXPECT_NEAR(static_cast<double>(q.spqr->outlier_cols.size()), static_cast<double>(want_count),
                0.01 * static_cast<double>(want_count) + 2)
        << label;
    const double err =
        RelativeReconstructionError(g->layer.w.data(), l.w.data(), l.h.data(), l.rows, l.cols);
    const double want_err = e.at("relative_error").get<double>();
    EXPECT_NEAR(err, want_err, 1e-3 * want_err) << label;
    int64_t close = 0;
    for (size_t i = 0; i < want_w.size(); ++i) {
      close += std::fabs(l.w[i] - want_w[i]) <= 1e-4f * (1.0f + std::fabs(want_w[i]));
    }
    EXPECT_GE(static_cast<double>(close) / static_cast<double>(want_w.size()), 0.99) << label;
  }
}

TEST(SpqrTest, StoredFormRebuildsTheWeightsExactly) {
  testing::Layer l = testing::RandomLayer(40, 96, 512, 7);
  SpqrOptions o;
  o.stat_group = 16;  // 40 rows: the last statistics group has 8
  o.threads = 2;
  auto r = Spqr(l.w.data(), l.rows, l.cols, l.h.data(), o, "layer");
  ASSERT_TRUE(r.ok()) << r.status();
  const QuantizedTensor& q = *r->quantized;
  ASSERT_TRUE(q.spqr.has_value());
  std::vector<float> rebuilt(l.rows * l.cols);
  q.DequantizeTo(rebuilt.data());
  EXPECT_EQ(rebuilt, l.w);
  const SpqrParts& p = *q.spqr;
  EXPECT_EQ(q.groups, 6);
  EXPECT_EQ(p.scale_stats.size(), static_cast<size_t>(6 * 3 * 2));
  EXPECT_GT(p.outlier_cols.size(), 0u);
  EXPECT_LT(p.outlier_cols.size(), static_cast<size_t>(l.rows * l.cols / 20));
  for (int64_t row = 0; row < l.rows; ++row) {
    for (int32_t k = p.outlier_rows[row]; k < p.outlier_rows[row + 1]; ++k) {
      const float v = p.outlier_values[k];
      EXPECT_EQ(v, HalfToFloatRef(FloatToHalfRef(v))) << "outliers are float16";
      if (k > p.outlier_rows[row]) {
        EXPECT_LT(p.outlier_cols[k - 1], p.outlier_cols[k]);
      }
    }
  }
  for (size_t i = 0; i < p.scale_codes.size(); ++i) {
    ASSERT_LE(p.scale_codes[i], 7);
    ASSERT_LE(p.zero_codes[i], 7);
  }
  for (float s : p.scale_stats) EXPECT_EQ(s, HalfToFloatRef(FloatToHalfRef(s)));
  // Every group's scale is its statistics group's dequantized code.
  const int64_t chunks = 3;
  for (int64_t g = 0; g < q.groups; ++g) {
    for (int64_t row = 0; row < l.rows; ++row) {
      const float* st = &p.scale_stats[(g * chunks + row / 16) * 2];
      EXPECT_EQ(q.scales[row * q.groups + g], st[0] * (p.scale_codes[g * l.rows + row] - st[1]));
    }
  }
  // 3-bit codes + 16-bit order + two 3-bit stats per 16 + float16 pairs + CSR.
  const uint64_t want = 40 * 96 * 3 + 96 * 16 + 2 * ((6 * 40 * 3 + 7) / 8 * 8) +
                        2 * 6 * 3 * 2 * 16 + 41 * 32 + p.outlier_cols.size() * 32;
  EXPECT_EQ(SpqrStoredBits(q), want);
}

TEST(SpqrTest, OutliersLowerTheErrorAndNoneWhenOff) {
  testing::Layer base = testing::RandomLayer(64, 128, 1024, 11);
  base.w[5 * 128 + 9] = 40.0f;  // one large weight among N(0, 1)
  double err[2];
  for (int with = 0; with < 2; ++with) {
    testing::Layer l = base;
    SpqrOptions o;
    o.outlier_threshold = with ? 0.2 : std::numeric_limits<double>::infinity();
    auto r = Spqr(l.w.data(), l.rows, l.cols, l.h.data(), o, "layer");
    ASSERT_TRUE(r.ok()) << r.status();
    const SpqrParts& p = *r->quantized->spqr;
    if (!with) {
      EXPECT_TRUE(p.outlier_cols.empty());
    }
    if (with) {
      bool found = false;
      for (int32_t k = p.outlier_rows[5]; k < p.outlier_rows[6]; ++k)
        found |= p.outlier_cols[k] == 9;
      EXPECT_TRUE(found) << "the large weight is an outlier";
    }
    err[with] = RelativeReconstructionError(base.w.data(), l.w.data(), l.h.data(), l.rows, l.cols);
  }
  EXPECT_LT(err[1], 0.8 * err[0]);
}

TEST(SpqrTest, BadOptionsNameTheField) {
  testing::Layer l = testing::RandomLayer(8, 16, 64, 3);
  SpqrOptions o;
  o.stat_bits = 9;
  auto r = Spqr(l.w.data(), l.rows, l.cols, l.h.data(), o, "model.layers.0.mlp.up_proj");
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("model.layers.0.mlp.up_proj: spqr stat_bits"),
            std::string::npos)
      << r.status();
  o = SpqrOptions();
  o.outlier_threshold = 0.0;
  EXPECT_EQ(Spqr(l.w.data(), l.rows, l.cols, l.h.data(), o, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine
