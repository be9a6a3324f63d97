// BF16 GEMMs (bf16_gemm.h) and the CPU backend's bf16 Linear: the oneDNN
// product against a float64 reference on the same bfloat16 operands (the
// rounding itself is model/dtype.h's, tested in dtype_test). Skipped, visibly, on a build
// without oneDNN (and that build's refusal is checked instead).
#include "workers/engine/nn/bf16_gemm.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "workers/engine/model/dtype.h"
#include "workers/engine/nn/backend_factory.h"
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

}  // namespace
}  // namespace compressd::engine
