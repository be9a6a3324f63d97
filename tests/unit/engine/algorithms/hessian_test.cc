#include "workers/engine/algorithms/hessian.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/engine/algorithms/solver_testing.h"
#include "workers/engine/algorithms/obs_sweep.h"

extern "C" int openblas_get_num_threads(void);

namespace compressd::engine {
namespace {

std::vector<float> RandomMatrix(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

TEST(HessianTest, StreamingMatchesReferenceAcrossBatchesAndChunks) {
  const int64_t dim = 24;
  // Three batches; the second is longer than one ssyrk chunk.
  const int64_t sizes[] = {100, HessianAccumulator::kChunkTokens + 77, 3};
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  const std::vector<float> x = RandomMatrix(total * dim, 3);
  HessianAccumulator acc(dim);
  int64_t off = 0;
  for (int64_t s : sizes) {
    ASSERT_TRUE(acc.Add(x.data() + off * dim, s).ok());
    off += s;
  }
  EXPECT_EQ(acc.tokens(), total);
  auto h = acc.Hessian();
  ASSERT_TRUE(h.ok()) << h.status();
  const std::vector<float> ref = HessianRef(x.data(), total, dim);
  for (int64_t i = 0; i < dim * dim; ++i) {
    EXPECT_NEAR((*h)[i], ref[i], 1e-5f * (1.0f + std::fabs(ref[i]))) << i;
  }
  EXPECT_EQ((*h)[1 * dim + 5], (*h)[5 * dim + 1]);  // full symmetric
  EXPECT_NEAR(ref[0], 2.0f, 0.2f);                  // 2 E[x^2] with unit variance
}

// Several panels (the last one short), spread over 1, 2 and 5 threads: the
// same bits each time, and the float64 reference's values.
TEST(HessianTest, PanelsOverThreadsAreBitIdenticalAndMatchReference) {
  const int64_t dim = 3 * HessianAccumulator::kPanelRows + 37;
  const int64_t tokens = 300;
  const std::vector<float> x = RandomMatrix(tokens * dim, 11);
  std::vector<std::vector<float>> got;
  for (int threads : {1, 2, 5}) {
    HessianAccumulator acc(dim, threads);
    ASSERT_TRUE(acc.Add(x.data(), 200).ok());
    ASSERT_TRUE(acc.Add(x.data() + 200 * dim, tokens - 200).ok());
    auto h = acc.Hessian();
    ASSERT_TRUE(h.ok()) << h.status();
    got.push_back(*h);
  }
  EXPECT_EQ(got[0], got[1]);
  EXPECT_EQ(got[0], got[2]);
  const std::vector<float> ref = HessianRef(x.data(), tokens, dim);
  int64_t off = 0;
  for (int64_t i = 0; i < dim * dim; ++i) {
    off += std::fabs(got[1][i] - ref[i]) > 1e-5f * (1.0f + std::fabs(ref[i]));
  }
  EXPECT_EQ(off, 0);
  // Every panel is filled: the corner entries of the upper and lower triangles.
  EXPECT_EQ(got[1][dim - 1], got[1][(dim - 1) * dim]);
  EXPECT_NEAR(got[1][dim * dim - 1], ref[dim * dim - 1], 1e-4f);
}

TEST(HessianTest, NonFiniteInputIsNamedWhicheverThreadFindsIt) {
  const int64_t dim = 2 * HessianAccumulator::kPanelRows + 5;
  std::vector<float> x = RandomMatrix(4 * dim, 5);
  x[2 * dim + dim - 2] = std::numeric_limits<float>::infinity();  // token 2, last panel
  x[3 * dim + 130] = std::numeric_limits<float>::quiet_NaN();     // token 3, second panel
  HessianAccumulator acc(dim, 3);
  const absl::Status s = acc.Add(x.data(), 4);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("column 130 "), std::string::npos) << s;  // the lowest column
}

TEST(HessianTest, ErrorsForNoTokensAndNonFiniteInput) {
  HessianAccumulator acc(4);
  EXPECT_EQ(acc.Hessian().status().code(), absl::StatusCode::kFailedPrecondition);
  std::vector<float> x(8, 1.0f);
  x[6] = std::numeric_limits<float>::quiet_NaN();  // token 1, column 2
  const absl::Status s = acc.Add(x.data(), 2);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("column 2"), std::string::npos) << s;
  EXPECT_EQ(acc.Add(x.data(), -1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(HessianTest, InverseFactorMatchesFloat64Reference) {
  auto layer = testing::RandomLayer(1, 40, 200, 4);
  // A dead input: row and column j = 7 zero.
  for (int64_t i = 0; i < 40; ++i) layer.h[7 * 40 + i] = layer.h[i * 40 + 7] = 0.0f;
  auto u = InverseHessianUpper(layer.h.data(), 40, nullptr, 0.01, "t");
  ASSERT_TRUE(u.ok()) << u.status();
  const std::vector<float> ref = InverseHessianUpperRef(layer.h.data(), 40, 0.01);
  for (int64_t i = 0; i < 40; ++i) {
    for (int64_t j = 0; j < 40; ++j) {
      const float r = ref[i * 40 + j];
      if (j < i) {
        EXPECT_EQ((*u)[i * 40 + j], 0.0f);
      } else {
        EXPECT_NEAR((*u)[i * 40 + j], r, 2e-4f * std::fabs(ref[i * 40 + i]) + 1e-4f * std::fabs(r))
            << i << "," << j;
      }
    }
  }
}

TEST(HessianTest, PermutedFactorIsFactorOfPermutedHessian) {
  auto layer = testing::RandomLayer(1, 16, 100, 5);
  std::vector<int64_t> perm = {3, 15, 0, 1, 2, 14, 4, 5, 6, 13, 7, 8, 9, 12, 10, 11};
  std::vector<float> hp(256);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) hp[i * 16 + j] = layer.h[perm[i] * 16 + perm[j]];
  }
  auto u = InverseHessianUpper(layer.h.data(), 16, perm.data(), 0.05, "t");
  auto v = InverseHessianUpper(hp.data(), 16, nullptr, 0.05, "t");
  ASSERT_TRUE(u.ok() && v.ok());
  for (int i = 0; i < 256; ++i) EXPECT_FLOAT_EQ((*u)[i], (*v)[i]);
}

TEST(HessianTest, RejectsIndefiniteAndNegativeDiagonal) {
  std::vector<float> h = {1.0f, 2.0f, 2.0f, 1.0f};  // eigenvalues 3, -1
  auto u = InverseHessianUpper(h.data(), 2, nullptr, 0.0, "layers.3.mlp");
  EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(u.status().message().find("layers.3.mlp"), std::string::npos);
  std::vector<float> g = {-1.0f, 0.0f, 0.0f, 1.0f};
  EXPECT_EQ(InverseHessianUpper(g.data(), 2, nullptr, 0.01, "t").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(HessianTest, RelativeErrorMatchesReferenceAndDirectDefinition) {
  const int64_t rows = 6, cols = 20, tokens = 50;
  const std::vector<float> x = RandomMatrix(tokens * cols, 6);
  const std::vector<float> h = HessianRef(x.data(), tokens, cols);
  const std::vector<float> w = RandomMatrix(rows * cols, 7);
  std::vector<float> w2 = w;
  for (size_t i = 0; i < w2.size(); i += 3) w2[i] = 0.0f;
  const double e = RelativeReconstructionError(w.data(), w2.data(), h.data(), rows, cols);
  EXPECT_NEAR(e, RelativeReconstructionErrorRef(w.data(), w2.data(), h.data(), rows, cols),
              1e-5 * e);
  // ||W X - W' X||^2 / ||W X||^2 computed directly from X.
  double num = 0.0, den = 0.0;
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      double y = 0.0, y2 = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        y += double{w[r * cols + c]} * x[t * cols + c];
        y2 += double{w2[r * cols + c]} * x[t * cols + c];
      }
      num += (y - y2) * (y - y2);
      den += y * y;
    }
  }
  EXPECT_NEAR(e, num / den, 1e-4 * e);
  EXPECT_EQ(RelativeReconstructionError(w.data(), w.data(), h.data(), rows, cols), 0.0);
}

// The products' rows split over threads: the same bits for the same count,
// and the one-thread value on any.
TEST(HessianTest, RelativeErrorOnThreadsRepeatsAndMatchesOneThread) {
  const int64_t rows = 3 * kSgemmRowAlign + 37, cols = 150, tokens = 200;
  const std::vector<float> x = RandomMatrix(tokens * cols, 8);
  const std::vector<float> h = HessianRef(x.data(), tokens, cols);
  const std::vector<float> w = RandomMatrix(rows * cols, 9);
  std::vector<float> w2 = w;
  for (size_t i = 0; i < w2.size(); i += 4) w2[i] *= 0.5f;
  const double one = RelativeReconstructionError(w.data(), w2.data(), h.data(), rows, cols, 1);
  EXPECT_GT(one, 0.0);
  for (int threads : {2, 5, 64}) {
    const double e =
        RelativeReconstructionError(w.data(), w2.data(), h.data(), rows, cols, threads);
    EXPECT_EQ(RelativeReconstructionError(w.data(), w2.data(), h.data(), rows, cols, threads), e);
    EXPECT_NEAR(e, one, 1e-6 * one) << threads;
  }
}

// From kThreadedFactorDim on, the factorization runs on OpenBLAS's threads:
// the same bits for the same count, the one-thread factor's values, and
// OpenBLAS's own thread count is given back afterwards.
TEST(HessianTest, WideFactorOnThreadsRepeatsAndMatchesOneThread) {
  const int64_t dim = kThreadedFactorDim;
  std::vector<float> h = RandomMatrix(dim * dim, 12, 0.01f);
  for (int64_t i = 0; i < dim; ++i) {
    for (int64_t j = 0; j < i; ++j) h[i * dim + j] = h[j * dim + i];
    h[i * dim + i] = 1.0f + std::fabs(h[i * dim + i]);
  }
  const int before = openblas_get_num_threads();
  auto one = InverseHessianUpper(h.data(), dim, nullptr, 0.01, "t", 1);
  auto two = InverseHessianUpper(h.data(), dim, nullptr, 0.01, "t", 2);
  auto again = InverseHessianUpper(h.data(), dim, nullptr, 0.01, "t", 2);
  ASSERT_TRUE(one.ok() && two.ok() && again.ok());
  EXPECT_EQ(openblas_get_num_threads(), before);
  int64_t differ = 0;
  for (int64_t i = 0; i < dim * dim; ++i) {
    ASSERT_EQ((*two)[i], (*again)[i]) << i;
    differ += (*two)[i] != (*one)[i];
    ASSERT_NEAR((*two)[i], (*one)[i], 1e-5f * (1.0f + std::fabs((*one)[i]))) << i;
  }
  std::printf("threaded factor: %lld of %lld entries differ from the one-thread factor\n",
              static_cast<long long>(differ), static_cast<long long>(dim * dim));
}

}  // namespace
}  // namespace compressd::engine
