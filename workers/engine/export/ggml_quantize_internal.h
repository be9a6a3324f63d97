// Per-type block encoders behind ggml_quantize.h: the legacy types in
// ggml_quantize.cc, the k-quants in ggml_quantize_k.cc (Q4_K .. Q6_K) and
// ggml_quantize_k_low.cc (Q2_K, Q3_K). Each encodes `nb`
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
// RoundUpToHalf (model/dtype.h): k-quant scales rounded up never make the
// largest sub-block scale overflow its 6- or 8-bit range.
using engine::RoundUpToHalf;

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

// --- k-quant sub-block fits (ggml_quantize_k.cc), shared by every k-quant.

constexpr int kQK_K = 256;  // elements per k-quant super-block

inline int Clamp(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// x ~ scale * q - min with q in [0, nmax], scale > 0, min >= 0.
struct AsymFit {
  float scale = 0.0f;
  float min = 0.0f;
};

// Weighted squared error of `f` on x[0, n) with each element rounded to its best code.
float AsymError(const float* x, const float* w, int n, int nmax, const AsymFit& f);

// The fit of x[0, n) with the smallest weighted error among 21 grids around
// the min-max one (nmax -1 .. +1 steps over the range, least-squares refits).
AsymFit FitAsym(const float* x, const float* w, int n, int nmax);

// Tries the quantized sub-block scale *sc and min *mn (each in [0, smax])
// one step either side and keeps the pair with the smallest weighted error
// for decoded scale d * sc and min dmin * mn.
void RefineScaleMin(const float* x, const float* w, int n, int nmax, int smax, float d, float dmin,
                    int* sc, int* mn);

// The signed scale of x[0, n) ~ scale * l, l in [-nmax, nmax - 1], its
// largest-magnitude element near code -nmax (19 candidates, least-squares
// refit with weights x^2).
float FitSym(const float* x, int n, int nmax);

// One k-quant super-block from its parts (value = d * sc[e / 16] * (q[e] - offset)):
// Q3_K: codes q in [0, 7] (offset 4), sc in [-32, 31]; 110 bytes at y.
void PackQ3_K(const int* q, const int* sc, float d, uint8_t* y);
// Q6_K: codes q in [0, 63] (offset 32), sc in [-128, 127]; 210 bytes at y.
void PackQ6_K(const int* q, const int* sc, float d, uint8_t* y);
// The k-quants with a min (value = d * sc[j] * q[e] - dmin * mn[j], sub-block
// j of 16 (Q2_K) or 32 (Q4_K, Q5_K) elements):
// Q2_K: codes in [0, 3], sc and mn in [0, 15]; 84 bytes at y.
void PackQ2_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y);
// Q4_K / Q5_K: codes in [0, 15] / [0, 31], sc and mn in [0, 63]; 144 / 176 bytes.
void PackQ4_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y);
void PackQ5_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y);

using BlockEncodeFn = void (*)(const float* x, int64_t nb, uint8_t* y);

void EncodeF32(const float* x, int64_t nb, uint8_t* y);
void EncodeF16(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_1(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_1(const float* x, int64_t nb, uint8_t* y);
void EncodeQ8_0(const float* x, int64_t nb, uint8_t* y);
void EncodeQ2_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ3_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ4_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ5_K(const float* x, int64_t nb, uint8_t* y);
void EncodeQ6_K(const float* x, int64_t nb, uint8_t* y);

}  // namespace compressd::engine::ggml_quantize_internal
