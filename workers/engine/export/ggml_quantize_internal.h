// Per-type block encoders behind ggml_quantize.h: the legacy types in
// ggml_quantize.cc, the k-quants in ggml_quantize_k.cc. Each encodes `nb`
// whole blocks of floats at `x` into nb * type_size bytes at `y`; inputs are
// finite and within the fp16 range (checked by QuantizeRows). Internal;
// stateless and thread-safe.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "workers/engine/model/dtype.h"

namespace compressd::engine::ggml_quantize_internal {

inline void StoreU16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void StoreU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

// fp16 bits of f (round to nearest even) and the float they stand for.
inline uint16_t Half(float f) { return FloatToHalfRef(f); }
inline float RoundToHalf(float f) { return HalfToFloatRef(FloatToHalfRef(f)); }
// The smallest fp16 value >= f (f >= 0 and finite): scales rounded this way
// never make the largest sub-block scale overflow its 6- or 8-bit range, and
// a tiny positive scale never becomes 0 (fp16's subnormals are coarse).
inline float RoundUpToHalf(float f) {
  uint16_t h = FloatToHalfRef(f);
  if (HalfToFloatRef(h) < f) ++h;
  return HalfToFloatRef(h);
}

// Round half away from zero, as C's roundf / ggml's nearest_int.
inline int NearestInt(float f) { return static_cast<int>(std::round(f)); }

// Packs 32 codes of a legacy block (their low 4 bits) into 16 bytes: element
// j < 16 in the low nibble of byte j, element j + 16 in its high nibble.
inline void PackNibbles(const int* q, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
  }
}

// Bit 4 of each of 32 codes, element j at bit j (Q5_0 / Q5_1's qh).
inline uint32_t HighBits(const int* q) {
  uint32_t qh = 0;
  for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  return qh;
}

using BlockEncodeFn = void (*)(const float* x, int64_t nb, uint8_t* y);

void EncodeF32(const float* x, int64_t nb, uint8_t* y);
void EncodeF16(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_1(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_1(const float* x, int64_t nb, uint8_t* y);
void EncodeQ8_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ6_K(const float* x, int64_t nb, uint8_t* y);

}  // namespace compressd::engine::ggml_quantize_internal
