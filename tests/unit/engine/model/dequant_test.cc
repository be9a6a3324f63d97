// Dequantization: fast path == reference, hand-checked blocks, and golden
// fixtures from gguf-py (tests/golden/gguf_dequant_fixtures.py), all exact.
#include "workers/engine/model/gguf/dequant.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/engine/model/fixture_util.h"

namespace compressd::engine {
namespace {

using ::testing::HasSubstr;

const GgmlType kSupported[] = {GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ4_0,
                               GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0,
                               GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K,
                               GgmlType::kQ6_K};

uint16_t HalfBits(float f) {  // exact for the values used below
  if (f == 0.0f) return 0;
  int e;
  const float m = std::frexp(std::fabs(f), &e);  // f = m * 2^e, m in [0.5, 1)
  const uint16_t mant = static_cast<uint16_t>((m * 2048.0f) - 1024.0f);
  return static_cast<uint16_t>((f < 0 ? 0x8000 : 0) | ((e - 1 + 15) << 10) | mant);
}

// Random bytes for `n_blocks` blocks, with the fp16 scale fields set to
// moderate values so no NaN or infinity arises.
std::string RandomBlocks(GgmlType type, int64_t n_blocks, std::mt19937* rng) {
  const GgmlTypeTraits traits = *GgmlTraits(static_cast<uint32_t>(type));
  std::string b(static_cast<size_t>(n_blocks * traits.type_size), '\0');
  for (char& c : b) c = static_cast<char>((*rng)());
  std::vector<int> scale_offsets;
  switch (type) {
    case GgmlType::kQ4_0:
    case GgmlType::kQ5_0:
    case GgmlType::kQ8_0:
      scale_offsets = {0};
      break;
    case GgmlType::kQ4_1:
    case GgmlType::kQ5_1:
    case GgmlType::kQ4_K:
    case GgmlType::kQ5_K:
      scale_offsets = {0, 2};
      break;
    case GgmlType::kQ6_K:
      scale_offsets = {208};
      break;
    default:
      break;  // F32/F16/BF16: any bits (NaNs compare bitwise)
  }
  for (int64_t i = 0; i < n_blocks; ++i) {
    for (int off : scale_offsets) {
      const uint16_t h = static_cast<uint16_t>(((*rng)() & 0x8000) | (0x2000 + (*rng)() % 0x1800));
      std::memcpy(&b[i * traits.type_size + off], &h, 2);
    }
  }
  return b;
}

void ExpectBitEqual(const std::vector<float>& got, const std::vector<float>& want,
                    const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    uint32_t a, b;
    std::memcpy(&a, &got[i], 4);
    std::memcpy(&b, &want[i], 4);
    ASSERT_EQ(a, b) << what << " element " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(DequantTest, FastPathMatchesReferenceExactly) {
  std::mt19937 rng(42);
  for (GgmlType type : kSupported) {
    const GgmlTypeTraits traits = *GgmlTraits(static_cast<uint32_t>(type));
    const int64_t n_blocks = traits.block_size == 1 ? 4096 : 64;
    const std::string bytes = RandomBlocks(type, n_blocks, &rng);
    const int64_t n = n_blocks * traits.block_size;
    std::vector<float> fast(n), ref(n);
    ASSERT_TRUE(
        Dequantize(type, reinterpret_cast<const uint8_t*>(bytes.data()), n, fast.data()).ok());
    ASSERT_TRUE(
        DequantizeRef(type, reinterpret_cast<const uint8_t*>(bytes.data()), n, ref.data()).ok());
    ExpectBitEqual(fast, ref, traits.name);
  }
}

TEST(DequantTest, HandBuiltBlocks) {
  // Q4_0: d = 0.5, nibbles 0..15 in element order -> (q - 8) * 0.5.
  std::string q40(18, '\0');
  const uint16_t half = HalfBits(0.5f);
  std::memcpy(&q40[0], &half, 2);
  for (int j = 0; j < 16; ++j) q40[2 + j] = static_cast<char>((j & 0xF) | ((15 - j) << 4));
  std::vector<float> y(32);
  ASSERT_TRUE(
      Dequantize(GgmlType::kQ4_0, reinterpret_cast<const uint8_t*>(q40.data()), 32, y.data()).ok());
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], (j - 8) * 0.5f) << j;
    EXPECT_EQ(y[j + 16], (15 - j - 8) * 0.5f) << j;
  }
  // Q8_0: d = 0.25, q = -128..127 wrapped.
  std::string q80(34, '\0');
  const uint16_t quarter = HalfBits(0.25f);
  std::memcpy(&q80[0], &quarter, 2);
  for (int j = 0; j < 32; ++j) q80[2 + j] = static_cast<char>(static_cast<int8_t>(j * 8 - 128));
  ASSERT_TRUE(
      Dequantize(GgmlType::kQ8_0, reinterpret_cast<const uint8_t*>(q80.data()), 32, y.data()).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j * 8 - 128) * 0.25f) << j;
  // Q5_1: d = 1, m = -16, 5th bits from qh: element j has q = j.
  std::string q51(24, '\0');
  const uint16_t one = HalfBits(1.0f), m16 = HalfBits(-16.0f);
  std::memcpy(&q51[0], &one, 2);
  std::memcpy(&q51[2], &m16, 2);
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((j >> 4) & 1) << j;
  std::memcpy(&q51[4], &qh, 4);
  for (int j = 0; j < 16; ++j) q51[8 + j] = static_cast<char>((j & 0xF) | (((j + 16) & 0xF) << 4));
  ASSERT_TRUE(
      Dequantize(GgmlType::kQ5_1, reinterpret_cast<const uint8_t*>(q51.data()), 32, y.data()).ok());
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], j - 16.0f) << j;
}

TEST(DequantTest, HalfAndBFloat16Conversions) {
  EXPECT_EQ(HalfBitsToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfBitsToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfBitsToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfBitsToFloat(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfBitsToFloat(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::signbit(HalfBitsToFloat(0x8000)));
  EXPECT_TRUE(std::isinf(HalfBitsToFloat(0x7c00)));
  EXPECT_TRUE(std::isnan(HalfBitsToFloat(0x7e00)));
  EXPECT_EQ(BF16BitsToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BF16BitsToFloat(0xc2f7), -123.5f);
}

TEST(DequantTest, RejectsUnsupportedTypeAndPartialBlocks) {
  float y[256];
  const uint8_t zeros[512] = {};
  absl::Status s = Dequantize(GgmlType::kQ8_1, zeros, 32, y);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("Q8_1"));
  EXPECT_FALSE(CanDequantize(GgmlType::kIQ2_XXS));
  s = Dequantize(GgmlType::kQ4_0, zeros, 33, y);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("33 elements of Q4_0"));
  EXPECT_EQ(*GgmlRowBytes(GgmlType::kQ6_K, 512), 420u);
  // Nothing to convert: no access at all (found by fuzz_dequant: memcpy(nullptr, nullptr, 0)).
  for (GgmlType type : kSupported) {
    EXPECT_TRUE(Dequantize(type, nullptr, 0, nullptr).ok());
    EXPECT_TRUE(DequantizeRef(type, nullptr, 0, nullptr).ok());
  }
  EXPECT_FALSE(GgmlRowBytes(GgmlType::kF32, -1).ok());
}

// Golden: random blocks dequantized by gguf-py's gguf.quants.dequantize.
TEST(DequantTest, MatchesGgufPyOnRandomBlocks) {
  std::vector<testing::DequantRecord> records = testing::ReadDequantFixture();
  ASSERT_FALSE(records.empty());
  int checked = 0;
  for (const testing::DequantRecord& r : records) {
    if (r.name.rfind("model:", 0) == 0) continue;
    const GgmlType type = static_cast<GgmlType>(r.ggml_type);
    ASSERT_EQ(*GgmlRowBytes(type, r.n), r.raw.size()) << r.name;
    std::vector<float> fast(r.n), ref(r.n);
    const uint8_t* raw = reinterpret_cast<const uint8_t*>(r.raw.data());
    ASSERT_TRUE(Dequantize(type, raw, r.n, fast.data()).ok()) << r.name;
    ASSERT_TRUE(DequantizeRef(type, raw, r.n, ref.data()).ok()) << r.name;
    ExpectBitEqual(fast, r.expected, r.name + " (fast)");
    ExpectBitEqual(ref, r.expected, r.name + " (ref)");
    ++checked;
  }
  EXPECT_EQ(checked, 20);  // every type, random and (where gguf-py can) quantized blocks
}

}  // namespace
}  // namespace compressd::engine
