// BF16 GEMMs (bf16_gemm.h) and the CPU backend's bf16 Linear: the oneDNN
// product against a float64 reference on the same bfloat16 operands (the
// rounding itself is model/dtype.h's, tested in dtype_test). Skipped, visibly, on a build
// without oneDNN (and that build's refusal is checked instead).
#include "workers/engine/nn/bf16_gemm.h"

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/nn/backend_factory.h"
#include "workers/engine/nn/bf16_weight_cache.h"
#include "workers/engine/nn/cpu_backend.h"

namespace compressd::engine {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(Bf16Test, AWorkerWithoutOneDnnRefusesBf16) {
  if (Bf16GemmAvailable().ok()) GTEST_SKIP() << "this build has oneDNN";
  EXPECT_EQ(CreateBackend("cpu", 1, Compute::kBf16).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(Bf16Test, ComputeNamesAreCheckedByName) {
  EXPECT_EQ(*ParseCompute(""), Compute::kFp32);
  EXPECT_EQ(*ParseCompute("fp32"), Compute::kFp32);
  EXPECT_EQ(*ParseCompute("bf16"), Compute::kBf16);
  const absl::Status bad = ParseCompute("fp16").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("compute"), std::string::npos) << bad;
}

class Bf16GemmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Bf16GemmAvailable().ok()) GTEST_SKIP() << Bf16GemmAvailable().message();
  }
};

// Odd shapes, a row stride wider than the output.
TEST_F(Bf16GemmTest, ProductMatchesFloat64OnTheSameOperands) {
  const int64_t t = 37, in = 203, out = 70, ldy = 75;
  const std::vector<float> x = Random(t * in, 1), w = Random(out * in, 2);
  std::vector<uint16_t> xb(x.size()), wb(w.size());
  FloatToBFloat16(x.data(), xb.data(), xb.size());
  FloatToBFloat16(w.data(), wb.data(), wb.size());
  std::vector<float> got(t * ldy, -7.0f), want(t * ldy, -7.0f);
  Bf16Gemm(xb.data(), t, in, wb.data(), out, got.data(), ldy);
  Bf16GemmRef(xb.data(), t, in, wb.data(), out, want.data(), ldy);
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t o = 0; o < ldy; ++o) {
      const float g = got[r * ldy + o], e = want[r * ldy + o];
      if (o >= out) {
        EXPECT_EQ(g, -7.0f) << "wrote past the row at " << r << ", " << o;
      } else {
        EXPECT_NEAR(g, e, 2e-5f * std::sqrt(static_cast<float>(in)) * (1.0f + std::fabs(e)));
      }
    }
  }
}

// Both of Linear's splits (token rows; output features for few tokens), with
// a bias: the bf16 backend against the float64 product of the rounded
// operands, and visibly different from the float32 backend.
TEST_F(Bf16GemmTest, BackendLinearIsTheBf16ProductInBothSplits) {
  auto bf16 = CreateBackend("cpu", 3, Compute::kBf16);
  auto fp32 = CreateBackend("cpu", 3, Compute::kFp32);
  ASSERT_TRUE(bf16.ok() && fp32.ok());
  for (const int64_t t : {int64_t{500}, int64_t{5}}) {
    const int64_t in = 96, out = 300;
    const std::vector<float> x = Random(t * in, 3), w = Random(out * in, 4), b = Random(out, 5);
    std::vector<uint16_t> xb(x.size()), wb(w.size());
    FloatToBFloat16(x.data(), xb.data(), xb.size());
    FloatToBFloat16(w.data(), wb.data(), wb.size());
    std::vector<float> got(t * out), exact(t * out), want(t * out);
    (*bf16)->Linear(x.data(), t, in, w.data(), b.data(), out, got.data());
    (*fp32)->Linear(x.data(), t, in, w.data(), b.data(), out, exact.data());
    Bf16GemmRef(xb.data(), t, in, wb.data(), out, want.data(), out);
    double far_from_fp32 = 0;
    for (int64_t r = 0; r < t; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        const float e = want[r * out + o] + b[o];
        ASSERT_NEAR(got[r * out + o], e, 1e-4f * (1.0f + std::fabs(e)))
            << t << " " << r << " " << o;
        far_from_fp32 = std::max(far_from_fp32, double{std::fabs(exact[r * out + o] - e)});
      }
    }
    EXPECT_GT(far_from_fp32, 1e-3) << "the bf16 backend computed in float32";
  }
}

// Packed weights give the plain-weight product of the same operands, at a
// row count other than the one they were packed for too (or say they cannot).
TEST_F(Bf16GemmTest, PackedWeightsGiveThePlainProduct) {
  const int64_t in = 160, out = 96;
  const std::vector<float> w = Random(out * in, 6);
  std::vector<uint16_t> wb(w.size());
  FloatToBFloat16(w.data(), wb.data(), wb.size());
  const std::unique_ptr<Bf16PackedWeights> packed =
      Bf16PackedWeights::Pack(wb.data(), 256, in, out);
  ASSERT_NE(packed, nullptr);
  EXPECT_GE(packed->bytes(), wb.size() * sizeof(uint16_t));
  for (const int64_t t : {int64_t{256}, int64_t{77}}) {
    const std::vector<float> x = Random(t * in, 7);
    std::vector<uint16_t> xb(x.size());
    FloatToBFloat16(x.data(), xb.data(), xb.size());
    std::vector<float> got(t * out), want(t * out);
    const bool done = packed->Gemm(xb.data(), t, got.data(), out);
    if (t == 256) {
      ASSERT_TRUE(done) << "the row count it was packed for";
    }
    if (!done) continue;  // oneDNN wants another layout for t rows
    Bf16GemmRef(xb.data(), t, in, wb.data(), out, want.data(), out);
    for (int64_t i = 0; i < t * out; ++i) {
      ASSERT_NEAR(got[i], want[i],
                  2e-5f * std::sqrt(static_cast<float>(in)) * (1.0f + std::fabs(want[i])))
          << t << " " << i;
    }
  }
}

// The cache returns the packed weights while the rounded weight is the same,
// packs again when it was rewritten in place, and keeps within its bound.
TEST_F(Bf16GemmTest, WeightCacheHitsOnlyOnTheSameRoundedWeights) {
  const int64_t in = 64, out = 128, t = 128;
  std::vector<float> w = Random(out * in, 8);
  std::vector<uint16_t> wb(w.size());
  FloatToBFloat16(w.data(), wb.data(), wb.size());
  Bf16WeightCache cache(1 << 20);
  const Bf16PackedWeights* first = cache.Get(w.data(), wb.data(), t, in, out);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(cache.Get(w.data(), wb.data(), t, in, out), first);
  EXPECT_EQ(cache.hits(), 1);
  wb[123] ^= 1;  // the weight rewritten in place: same address, other values
  EXPECT_NE(cache.Get(w.data(), wb.data(), t, in, out), nullptr);
  EXPECT_EQ(cache.packs(), 2);
  EXPECT_EQ(cache.hits(), 1);
  Bf16WeightCache tiny(in * out * sizeof(uint16_t));  // less than rounded + packed
  EXPECT_EQ(tiny.Get(w.data(), wb.data(), t, in, out), nullptr);
  EXPECT_EQ(tiny.bytes(), 0u);
}

// Through the backend: a weight rewritten between two calls at the same
// address gives the new product, not the packed old one.
TEST_F(Bf16GemmTest, BackendLinearSeesAWeightRewrittenInPlace) {
  auto bf16 = CreateBackend("cpu", 2, Compute::kBf16);
  ASSERT_TRUE(bf16.ok());
  const int64_t t = 256, in = 64, out = 80;
  const std::vector<float> x = Random(t * in, 9);
  std::vector<float> w = Random(out * in, 10);
  std::vector<float> first(t * out), again(t * out), rewritten(t * out), want(t * out);
  (*bf16)->Linear(x.data(), t, in, w.data(), nullptr, out, first.data());
  (*bf16)->Linear(x.data(), t, in, w.data(), nullptr, out, again.data());
  EXPECT_EQ(first, again);
  for (float& v : w) v = -2.0f * v;
  (*bf16)->Linear(x.data(), t, in, w.data(), nullptr, out, rewritten.data());
  std::vector<uint16_t> xb(x.size()), wb(w.size());
  FloatToBFloat16(x.data(), xb.data(), xb.size());
  FloatToBFloat16(w.data(), wb.data(), wb.size());
  Bf16GemmRef(xb.data(), t, in, wb.data(), out, want.data(), out);
  for (int64_t i = 0; i < t * out; ++i) {
    ASSERT_NEAR(rewritten[i], want[i], 1e-4f * (1.0f + std::fabs(want[i]))) << i;
  }
}

}  // namespace
}  // namespace compressd::engine
