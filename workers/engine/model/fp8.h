// FP8 E4M3 ("e4m3fn", OCP FP8 and NVIDIA's float8_e4m3fn): 1 sign bit, 4
// exponent bits (bias 7), 3 mantissa bits, no infinities, one NaN pattern per
// sign (S.1111.111). Normal values (1 + m/8) * 2^(e-7) for e in [1, 15]
// (the largest 1.75 * 2^8 = 448), subnormals m * 2^-9 for e = 0.
//
// Fp8E4m3Round gives the E4M3 value nearest a float (ties to even, as
// PyTorch's and CUDA's conversions), saturating at +-448 (the compressed-
// tensors / vLLM convention: they clamp to the range before the cast);
// Fp8E4m3Code its byte (values that round to zero get +0, 0x00);
// Fp8E4m3Value decodes any byte. The functions compile for the host and for
// CUDA kernels (the worker's and the device's arithmetic are the same code).
// Stateless and thread-safe.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define COMPRESSD_FP8_FN __host__ __device__ inline
#else
#define COMPRESSD_FP8_FN inline
#endif

namespace compressd::engine {

constexpr float kFp8E4m3Max = 448.0f;
constexpr float kFp8E4m3MinNormal = 0.015625f;  // 2^-6
constexpr float kFp8E4m3Step = 0.001953125f;    // 2^-9, the subnormal step
// vLLM's floor on a per-token activation scale (min_scaling_factor).
constexpr float kFp8MinTokenScale = 1.0f / (448.0f * 512.0f);

namespace fp8_internal {

COMPRESSD_FP8_FN uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}
COMPRESSD_FP8_FN float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

}  // namespace fp8_internal

// The E4M3 value nearest x (finite), ties to even; |x| >= 448 gives +-448.
COMPRESSD_FP8_FN float Fp8E4m3Round(float x) {
  const float a = fabsf(x);
  float r;
  if (!(a < kFp8E4m3Max)) {
    r = kFp8E4m3Max;
  } else if (a < kFp8E4m3MinNormal) {  // the subnormal lattice m * 2^-9 (exact scaling)
    r = rintf(a * 512.0f) * kFp8E4m3Step;
  } else {  // keep 3 of float32's 23 mantissa bits, rounding the other 20 half to even
    uint32_t b = fp8_internal::Bits(a);
    b += 0x7FFFFu + ((b >> 20) & 1u);
    r = fminf(fp8_internal::FromBits(b & 0xFFF00000u), kFp8E4m3Max);
  }
  return copysignf(r, x);
}

// The byte of v, an E4M3 value (Fp8E4m3Round's result).
COMPRESSD_FP8_FN uint8_t Fp8E4m3Code(float v) {
  const uint8_t sign = v < 0.0f ? 0x80 : 0x00;
  const float a = fabsf(v);
  if (a < kFp8E4m3MinNormal) {
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(rintf(a * 512.0f)));
  }
  const uint32_t b = fp8_internal::Bits(a);
  const uint32_t e = (b >> 23) - 127u + 7u;  // in [1, 15]
  return static_cast<uint8_t>(sign | (e << 3) | ((b >> 20) & 7u));
}

// The value of byte c (NaN for S.1111.111).
COMPRESSD_FP8_FN float Fp8E4m3Value(uint8_t c) {
  const int e = (c >> 3) & 15, m = c & 7;
  float a;
  if (e == 15 && m == 7) {
    a = fp8_internal::FromBits(0x7FC00000u);  // quiet NaN
  } else if (e == 0) {
    a = static_cast<float>(m) * kFp8E4m3Step;
  } else {
    a = ldexpf(1.0f + 0.125f * static_cast<float>(m), e - 7);
  }
  return (c & 0x80) ? -a : a;
}

}  // namespace compressd::engine
