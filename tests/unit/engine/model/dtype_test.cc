#include "workers/engine/model/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

TEST(DTypeTest, ParseNamesAndSizes) {
  EXPECT_EQ(*ParseDType("F16"), DType::kF16);
  EXPECT_EQ(*ParseDType("BF16"), DType::kBF16);
  EXPECT_EQ(*ParseDType("F8_E4M3"), DType::kF8E4M3);
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  EXPECT_STREQ(DTypeName(DType::kBF16), "BF16");
  absl::StatusOr<DType> bad = ParseDType("F17");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("F17"), absl::string_view::npos);
}

TEST(DTypeTest, HalfReferenceKnownValues) {
  EXPECT_EQ(HalfToFloatRef(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloatRef(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloatRef(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloatRef(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Bits(HalfToFloatRef(0x8000)), 0x80000000u);      // -0 kept
  EXPECT_TRUE(std::isinf(HalfToFloatRef(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfToFloatRef(0x7e01)));
  EXPECT_EQ(FloatToHalfRef(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfRef(65520.0f), 0x7c00);  // rounds up to inf
  EXPECT_EQ(FloatToHalfRef(65519.0f), 0x7bff);
  // Ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(FloatToHalfRef(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(FloatToHalfRef(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_EQ(FloatToHalfRef(std::ldexp(1.0f, -25)), 0x0000);  // tie to even zero
  EXPECT_EQ(FloatToHalfRef(std::ldexp(1.5f, -25)), 0x0001);  // above the tie
  EXPECT_EQ(FloatToHalfRef(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfRef(std::numeric_limits<float>::quiet_NaN()) & 0x7e00, 0x7e00);
}

TEST(DTypeTest, BFloat16ReferenceKnownValues) {
  EXPECT_EQ(FloatToBFloat16Ref(1.0f), 0x3f80);
  EXPECT_EQ(BFloat16ToFloatRef(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties to even.
  EXPECT_EQ(FloatToBFloat16Ref(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(FloatToBFloat16Ref(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_EQ(FloatToBFloat16Ref(std::numeric_limits<float>::max()), 0x7f80);  // overflow to inf
  EXPECT_TRUE(std::isnan(BFloat16ToFloatRef(FloatToBFloat16Ref(std::nanf("")))));
}

TEST(DTypeTest, EveryHalfRoundTripsThroughFloat) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> fast(65536);
  HalfToFloat(all.data(), fast.data(), all.size());
  std::vector<uint16_t> back(65536);
  FloatToHalf(fast.data(), back.data(), fast.size());
  for (uint32_t i = 0; i < 65536; ++i) {
    const float ref = HalfToFloatRef(all[i]);
    ASSERT_EQ(Bits(fast[i]), Bits(ref)) << "half 0x" << std::hex << i;
    ASSERT_EQ(FloatToHalfRef(ref), back[i]) << "half 0x" << std::hex << i;
    const bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
    if (!nan) {
      ASSERT_EQ(back[i], all[i]) << "half 0x" << std::hex << i;
    }
  }
}

TEST(DTypeTest, BulkFloatToHalfMatchesReference) {
  std::mt19937 rng(7);
  std::vector<float> in;
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = rng();
    float f;
    std::memcpy(&f, &u, 4);
    in.push_back(f);  // every exponent, NaNs and infinities included
  }
  std::vector<uint16_t> half(in.size()), bf(in.size());
  FloatToHalf(in.data(), half.data(), in.size());
  FloatToBFloat16(in.data(), bf.data(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    ASSERT_EQ(half[i], FloatToHalfRef(in[i])) << "float bits 0x" << std::hex << Bits(in[i]);
    ASSERT_EQ(bf[i], FloatToBFloat16Ref(in[i]));
  }
}

// The bulk BF16 conversion (vectorised where the CPU allows) against the
// reference on what random bits rarely hit: exact ties either way, the
// rounding carry into the exponent and to infinity, subnormals, NaNs; at an
// odd start and length so that the scalar tail runs too.
TEST(DTypeTest, BulkFloatToBFloat16MatchesReferenceOnTiesAndTails) {
  std::vector<uint32_t> bits;
  for (uint32_t hi : {0x0000u, 0x0001u, 0x3f80u, 0x3f81u, 0x7f7fu, 0x7f80u, 0x7fc0u, 0x807fu}) {
    for (uint32_t lo : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu}) {
      bits.push_back(hi << 16 | lo);
      bits.push_back((hi ^ 0x8000u) << 16 | lo);  // the other sign
    }
  }
  std::vector<float> in(bits.size());
  std::memcpy(in.data(), bits.data(), bits.size() * 4);
  for (size_t start : {0, 3}) {
    const size_t n = in.size() - start - 2;
    std::vector<uint16_t> bf(n);
    FloatToBFloat16(in.data() + start, bf.data(), n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(bf[i], FloatToBFloat16Ref(in[start + i]))
          << "float bits 0x" << std::hex << bits[start + i];
    }
  }
}

TEST(DTypeTest, BytesConversionsAreUnalignedSafeAndExact) {
  const std::vector<float> values = {0.0f, -1.5f, 3.25f, 1e-3f, 0.0f};
  for (DType dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
    absl::StatusOr<std::string> bytes = FloatsToBytes(dtype, values.data(), values.size());
    ASSERT_TRUE(bytes.ok());
    ASSERT_EQ(bytes->size(), values.size() * DTypeSize(dtype));
    std::string shifted = "x" + *bytes;  // force misalignment
    std::vector<float> back(values.size());
    ASSERT_TRUE(BytesToFloats(dtype, shifted.data() + 1, values.size(), back.data()).ok());
    EXPECT_EQ(back[0], 0.0f);
    EXPECT_EQ(back[1], -1.5f);
    EXPECT_EQ(back[2], 3.25f);
    EXPECT_EQ(*FloatsToBytes(dtype, back.data(), back.size()), *bytes) << DTypeName(dtype);
  }
  EXPECT_EQ(FloatsToBytes(DType::kI8, values.data(), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace compressd::engine
