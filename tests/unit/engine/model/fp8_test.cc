// FP8 E4M3 (workers/engine/model/fp8.h) against a definition written out
// here: the value table from the format's fields, and rounding by search over
// it. PyTorch's float8_e4m3fn cast is the fixtures' reference
// (tests/golden/algo_reference.py, the fp8 grids in algorithms/golden_test).
#include "workers/engine/model/fp8.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace compressd::engine {
namespace {

// Every finite non-negative E4M3 value with its byte, in increasing order.
struct Entry {
  double value;
  uint8_t code;
};
std::vector<Entry> Table() {
  std::vector<Entry> t;
  for (int e = 0; e < 16; ++e) {
    for (int m = 0; m < 8; ++m) {
      if (e == 15 && m == 7) continue;
      const double v = e == 0 ? m * std::ldexp(1.0, -9) : (1 + m / 8.0) * std::ldexp(1.0, e - 7);
      t.push_back({v, static_cast<uint8_t>(e << 3 | m)});
    }
  }
  return t;
}

// The nearest table value to a >= 0, ties to the even code, saturating.
Entry Nearest(double a) {
  const std::vector<Entry> t = Table();
  Entry best = t[0];
  for (const Entry& e : t) {
    const double d = std::fabs(a - e.value), bd = std::fabs(a - best.value);
    if (d < bd || (d == bd && (e.code & 1) == 0)) best = e;
  }
  return a >= 448.0 ? t.back() : best;
}

TEST(Fp8E4m3Test, EveryByteDecodesToItsFields) {
  for (const Entry& e : Table()) {
    EXPECT_EQ(Fp8E4m3Value(e.code), static_cast<float>(e.value)) << int{e.code};
    EXPECT_EQ(Fp8E4m3Value(e.code | 0x80), -static_cast<float>(e.value)) << int{e.code};
    EXPECT_EQ(Fp8E4m3Code(static_cast<float>(e.value)), e.value == 0 ? 0 : e.code);
    if (e.value != 0) {
      EXPECT_EQ(Fp8E4m3Code(-static_cast<float>(e.value)), e.code | 0x80);
    }
  }
  EXPECT_TRUE(std::isnan(Fp8E4m3Value(0x7F)));
  EXPECT_TRUE(std::isnan(Fp8E4m3Value(0xFF)));
  EXPECT_EQ(Fp8E4m3Value(0x7E), 448.0f);
  EXPECT_EQ(Fp8E4m3Value(0x01), 0.001953125f);  // the smallest subnormal, 2^-9
  EXPECT_EQ(Fp8E4m3Value(0x08), 0.015625f);     // the smallest normal, 2^-6
}

// Midpoints between neighbours are the ties; a float just either side of each
// must round to its side, each midpoint to the even code.
TEST(Fp8E4m3Test, RoundsToNearestTiesToEvenAtEveryMidpoint) {
  const std::vector<Entry> t = Table();
  for (size_t i = 0; i + 1 < t.size(); ++i) {
    const float mid = static_cast<float>((t[i].value + t[i + 1].value) / 2);
    ASSERT_EQ(static_cast<double>(mid), (t[i].value + t[i + 1].value) / 2);  // exact in float
    const Entry& even = (t[i].code & 1) == 0 ? t[i] : t[i + 1];
    EXPECT_EQ(Fp8E4m3Round(mid), static_cast<float>(even.value)) << mid;
    EXPECT_EQ(Fp8E4m3Round(std::nextafter(mid, 0.0f)), static_cast<float>(t[i].value)) << mid;
    EXPECT_EQ(Fp8E4m3Round(std::nextafter(mid, 1e9f)), static_cast<float>(t[i + 1].value)) << mid;
    EXPECT_EQ(Fp8E4m3Round(-mid), -static_cast<float>(even.value)) << mid;
  }
}

TEST(Fp8E4m3Test, RoundsRandomFloatsAsTheSearchAndSaturates) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-14.0f, 10.0f);
  std::uniform_int_distribution<int> sign(0, 1);
  for (int i = 0; i < 20000; ++i) {
    const float a = std::exp2(exponent(rng));
    const float x = sign(rng) ? -a : a;
    const Entry want = Nearest(a);
    const float got = Fp8E4m3Round(x);
    ASSERT_EQ(got, static_cast<float>(x < 0 ? -want.value : want.value)) << x;
    ASSERT_EQ(Fp8E4m3Code(got), want.value == 0 ? 0 : (want.code | (x < 0 ? 0x80 : 0))) << x;
    ASSERT_EQ(Fp8E4m3Value(Fp8E4m3Code(got)), got == 0 ? 0.0f : got) << x;
  }
  EXPECT_EQ(Fp8E4m3Round(463.9f), 448.0f);  // would round to 480, which E4M3fn lacks
  EXPECT_EQ(Fp8E4m3Round(1e30f), 448.0f);
  EXPECT_EQ(Fp8E4m3Round(-500.0f), -448.0f);
  EXPECT_EQ(Fp8E4m3Code(Fp8E4m3Round(-1e-6f)), 0);  // rounds to zero: +0's byte
}

}  // namespace
}  // namespace compressd::engine
