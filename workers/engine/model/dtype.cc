#include "workers/engine/model/dtype.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace compressd::engine {
namespace {

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeEntry kDTypes[] = {
    {DType::kBool, "BOOL", 1},       {DType::kU8, "U8", 1},     {DType::kI8, "I8", 1},
    {DType::kI16, "I16", 2},         {DType::kU16, "U16", 2},   {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},         {DType::kI64, "I64", 8},   {DType::kU64, "U64", 8},
    {DType::kF8E4M3, "F8_E4M3", 1},  {DType::kF8E5M2, "F8_E5M2", 1},
    {DType::kF16, "F16", 2},         {DType::kBF16, "BF16", 2}, {DType::kF32, "F32", 4},
    {DType::kF64, "F64", 8},
};

const DTypeEntry& Entry(DType dtype) {
  for (const DTypeEntry& e : kDTypes) {
    if (e.dtype == dtype) return e;
  }
  return kDTypes[0];  // unreachable: every enumerator is listed
}

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Rounds `m >> shift` to nearest, ties to even (shift in [1, 31]).
uint32_t ShiftRoundEven(uint32_t m, int shift) {
  const uint32_t q = m >> shift;
  const uint32_t r = m & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  return (r > half || (r == half && (q & 1))) ? q + 1 : q;
}

// CPUID leaf 1: ECX bit 29 is F16C; the OS must also save the YMM/XMM state
// (OSXSAVE, bit 27, and XCR0 bits 1-2). Written with <cpuid.h> so that GCC and
// clang both accept it (clang-14 does not know "f16c" in __builtin_cpu_supports).
bool HasF16C() {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
    if (!(c & (1u << 29)) || !(c & (1u << 27))) return false;
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0x6u) == 0x6u;
  }();
  return has;
}

__attribute__((target("f16c"))) void HalfToFloatF16C(const uint16_t* in, float* out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i));
    _mm_storeu_ps(out + i, _mm_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = HalfToFloatRef(in[i]);
}

__attribute__((target("f16c"))) void FloatToHalfF16C(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __m128i h = _mm_cvtps_ph(_mm_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = FloatToHalfRef(in[i]);
}

bool HasAvx512F() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

// FloatToBFloat16Ref on 16 floats at a time, in integers (bit-exact, subnormals
// kept; AVX512-BF16's vcvtneps2bf16 would flush them to zero). GCC 12 reports
// its own intrinsics' _mm512_undefined_epi32() as maybe-uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) void FloatToBFloat16Avx512(const float* in, uint16_t* out,
                                                              size_t n) {
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const __m512i inf = _mm512_set1_epi32(0x7f800000);
  const __m512i bias = _mm512_set1_epi32(0x7fff);
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i x = _mm512_loadu_si512(in + i);
    const __m512i hi = _mm512_srli_epi32(x, 16);
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(x, bias), _mm512_and_si512(hi, one)), 16);
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, abs_mask), inf);
    const __m512i r = _mm512_mask_blend_epi32(nan, rounded, _mm512_or_si512(hi, quiet));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(r));
  }
  for (; i < n; ++i) out[i] = FloatToBFloat16Ref(in[i]);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  for (const DTypeEntry& e : kDTypes) {
    if (name == e.name) return e.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", name, "\""));
}

const char* DTypeName(DType dtype) { return Entry(dtype).name; }
size_t DTypeSize(DType dtype) { return Entry(dtype).size; }

bool IsConvertibleFloat(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16;
}

float HalfToFloatRef(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) {  // inf / NaN (NaNs come out quiet, payload kept)
    return BitsFloat(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0));
  }
  if (exp == 0) {
    if (mant == 0) return BitsFloat(sign);
    int e = -14;  // subnormal: normalise
    while (!(mant & 0x400)) {
      mant <<= 1;
      --e;
    }
    mant &= 0x3ff;
    return BitsFloat(sign | static_cast<uint32_t>(e + 127) << 23 | mant << 13);
  }
  return BitsFloat(sign | (exp + 112) << 23 | mant << 13);
}

uint16_t FloatToHalfRef(float f) {
  const uint32_t x = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const int exp = static_cast<int>((x >> 23) & 0xff);
  const uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) {
    return mant ? static_cast<uint16_t>(sign | 0x7e00 | (mant >> 13)) : (sign | 0x7c00);
  }
  const int e = exp - 127 + 15;  // biased half exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {  // half subnormal or zero
    const int shift = 126 - exp;  // value / 2^-24 == (mant|implicit) >> shift
    if (shift > 31) return sign;
    return static_cast<uint16_t>(sign | ShiftRoundEven(mant | 0x800000, shift));
  }
  // The carry of rounding may ripple into the exponent (up to infinity): correct.
  const uint32_t q = ShiftRoundEven(static_cast<uint32_t>(e) << 23 | mant, 13);
  return static_cast<uint16_t>(sign | q);
}

float BFloat16ToFloatRef(uint16_t b) { return BitsFloat(static_cast<uint32_t>(b) << 16); }

uint16_t FloatToBFloat16Ref(float f) {
  const uint32_t x = FloatBits(f);
  if ((x & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float RoundUpToHalf(float f) {
  uint16_t h = FloatToHalfRef(f);
  if (HalfToFloatRef(h) < f) ++h;
  return HalfToFloatRef(h);
}

void HalfToFloat(const uint16_t* in, float* out, size_t n) {
  if (HasF16C()) return HalfToFloatF16C(in, out, n);
  for (size_t i = 0; i < n; ++i) out[i] = HalfToFloatRef(in[i]);
}

void FloatToHalf(const float* in, uint16_t* out, size_t n) {
  if (HasF16C()) return FloatToHalfF16C(in, out, n);
  for (size_t i = 0; i < n; ++i) out[i] = FloatToHalfRef(in[i]);
}

void BFloat16ToFloat(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = BFloat16ToFloatRef(in[i]);
}

void FloatToBFloat16(const float* in, uint16_t* out, size_t n) {
  if (HasAvx512F()) return FloatToBFloat16Avx512(in, out, n);
  for (size_t i = 0; i < n; ++i) out[i] = FloatToBFloat16Ref(in[i]);
}

absl::Status BytesToFloats(DType dtype, const char* in, size_t n, float* out) {
  if (dtype == DType::kF32) {
    std::memcpy(out, in, n * sizeof(float));
    return absl::OkStatus();
  }
  if (dtype != DType::kF16 && dtype != DType::kBF16) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert dtype ", DTypeName(dtype), " to F32"));
  }
  constexpr size_t kChunk = 4096;  // `in` may be unaligned: copy through a buffer
  uint16_t buf[kChunk];
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t m = std::min(kChunk, n - i);
    std::memcpy(buf, in + 2 * i, 2 * m);
    if (dtype == DType::kF16) {
      HalfToFloat(buf, out + i, m);
    } else {
      BFloat16ToFloat(buf, out + i, m);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> FloatsToBytes(DType dtype, const float* in, size_t n) {
  if (!IsConvertibleFloat(dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot convert F32 to dtype ", DTypeName(dtype)));
  }
  std::string out(n * DTypeSize(dtype), '\0');
  if (dtype == DType::kF32) {
    std::memcpy(out.data(), in, out.size());
    return out;
  }
  constexpr size_t kChunk = 4096;
  uint16_t buf[kChunk];
  for (size_t i = 0; i < n; i += kChunk) {
    const size_t m = std::min(kChunk, n - i);
    if (dtype == DType::kF16) {
      FloatToHalf(in + i, buf, m);
    } else {
      FloatToBFloat16(in + i, buf, m);
    }
    std::memcpy(out.data() + 2 * i, buf, 2 * m);
  }
  return out;
}

}  // namespace compressd::engine
