// Reference dequantization: one element at a time, each located in its block
// by the layout in ggml-quants.c (dequantize_row_*), with the fp16 scales
// decoded by bit manipulation. Slow and obvious; the fast path in dequant.cc
// must match it exactly.
#include "workers/engine/model/gguf/dequant.h"
#include "workers/engine/model/gguf/dequant_internal.h"

namespace compressd::engine {

float HalfBitsToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / NaN, payload kept
  } else if (exp != 0) {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  } else {
    // Zero or subnormal: mant * 2^-24 is exact in float.
    float f = static_cast<float>(mant) * 5.9604644775390625e-8f;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

float BF16BitsToFloat(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

namespace dequant_internal {
namespace {

float Half(const uint8_t* p) { return HalfBitsToFloat(LoadU16(p)); }

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block
// (ggml's get_scale_min_k4).
void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// The 4-bit quant of element e (0..31) of a legacy block's qs[16]: low
// nibbles hold elements 0..15, high nibbles 16..31.
int Nibble32(const uint8_t* qs, int e) { return e < 16 ? qs[e] & 0xF : qs[e - 16] >> 4; }

}  // namespace

void F32_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) std::memcpy(&y[i], src + 4 * i, 4);
}

void F16_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) y[i] = Half(src + 2 * i);
}

void BF16_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb; ++i) y[i] = BF16BitsToFloat(LoadU16(src + 2 * i));
}

void Q4_0_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 32; ++i) {
    const uint8_t* b = src + (i / 32) * 18;
    y[i] = static_cast<float>(Nibble32(b + 2, i % 32) - 8) * Half(b);
  }
}

void Q4_1_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 32; ++i) {
    const uint8_t* b = src + (i / 32) * 20;
    y[i] = static_cast<float>(Nibble32(b + 4, i % 32)) * Half(b) + Half(b + 2);
  }
}

void Q5_0_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 32; ++i) {
    const uint8_t* b = src + (i / 32) * 22;
    const int e = static_cast<int>(i % 32);
    const int high = (LoadU32(b + 2) >> e) & 1;  // bit e of qh is the 5th bit of element e
    y[i] = static_cast<float>((Nibble32(b + 6, e) | high << 4) - 16) * Half(b);
  }
}

void Q5_1_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 32; ++i) {
    const uint8_t* b = src + (i / 32) * 24;
    const int e = static_cast<int>(i % 32);
    const int high = (LoadU32(b + 4) >> e) & 1;
    y[i] = static_cast<float>(Nibble32(b + 8, e) | high << 4) * Half(b) + Half(b + 2);
  }
}

void Q8_0_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 32; ++i) {
    const uint8_t* b = src + (i / 32) * 34;
    y[i] = static_cast<float>(static_cast<int8_t>(b[2 + i % 32])) * Half(b);
  }
}

// Q2_K: scales[16], qs[64], d, dmin (fp16). Element e: half h = e / 128,
// w = e % 128; its 2 bits are bits 2 (w / 32) of qs[32h + w % 32]; scales[e / 16]
// holds its 4-bit scale (low nibble) and min (high nibble).
void Q2_K_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 256; ++i) {
    const uint8_t* b = src + (i / 256) * 84;
    const int e = static_cast<int>(i % 256), h = e / 128, w = e % 128;
    const int v = (b[16 + 32 * h + w % 32] >> (2 * (w / 32))) & 3;
    const uint8_t sm = b[e / 16];
    y[i] = Half(b + 80) * static_cast<float>(sm & 0xF) * static_cast<float>(v) -
           Half(b + 82) * static_cast<float>(sm >> 4);
  }
}

// Q3_K: hmask[32], qs[64], scales[12], d (fp16). Element e: low 2 bits as in
// Q2_K (qs at 32); code = low - 4 unless bit e / 32 of hmask[e % 32] is set.
// Scale j = e / 16 (6 bits, minus 32): low 4 bits in the low (j < 8) or high
// nibble of scales[j % 8], high 2 bits at bit 2 (j / 4) of scales[8 + j % 4].
void Q3_K_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 256; ++i) {
    const uint8_t* b = src + (i / 256) * 110;
    const int e = static_cast<int>(i % 256), h = e / 128, w = e % 128, j = e / 16;
    const int low2 = (b[32 + 32 * h + w % 32] >> (2 * (w / 32))) & 3;
    const int code = low2 - (((b[e % 32] >> (e / 32)) & 1) ? 0 : 4);
    const uint8_t* s = b + 96;
    const int low4 = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
    const int high2 = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    y[i] = Half(b + 108) * static_cast<float>((low4 | high2 << 4) - 32) * static_cast<float>(code);
  }
}

// Q4_K: d, dmin (fp16), scales[12], qs[128]. Element e of the super-block:
// chunk c = e / 64 uses qs[32c .. 32c + 31]; its first 32 elements are the
// low nibbles (sub-block 2c), the next 32 the high nibbles (sub-block 2c + 1).
void Q4_K_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 256; ++i) {
    const uint8_t* b = src + (i / 256) * 144;
    const int e = static_cast<int>(i % 256), c = e / 64, w = e % 64;
    const int sub = 2 * c + (w >= 32);
    int sc, m;
    ScaleMinK4(sub, b + 4, &sc, &m);
    const uint8_t q = b[16 + 32 * c + w % 32];
    const int v = w < 32 ? q & 0xF : q >> 4;
    y[i] = Half(b) * static_cast<float>(sc) * static_cast<float>(v) -
           Half(b + 2) * static_cast<float>(m);
  }
}

// Q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K plus a 5th bit, bit
// `sub` of qh[e % 32].
void Q5_K_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 256; ++i) {
    const uint8_t* b = src + (i / 256) * 176;
    const int e = static_cast<int>(i % 256), c = e / 64, w = e % 64;
    const int sub = 2 * c + (w >= 32);
    int sc, m;
    ScaleMinK4(sub, b + 4, &sc, &m);
    const uint8_t q = b[48 + 32 * c + w % 32];
    const int high = (b[16 + w % 32] >> sub) & 1;
    const int v = (w < 32 ? q & 0xF : q >> 4) | high << 4;
    y[i] = Half(b) * static_cast<float>(sc) * static_cast<float>(v) -
           Half(b + 2) * static_cast<float>(m);
  }
}

// Q6_K: ql[128], qh[64], scales[16] (int8), d (fp16). Element e: half
// h = e / 128, quarter k = (e % 128) / 32, l = e % 32. Low 4 bits: ql[64h +
// 32(k & 1) + l], low nibble for k < 2; high 2 bits: bits 2k, 2k+1 of
// qh[32h + l]; scale: scales[8h + 2k + l / 16]. Value (d * scale) * (q - 32).
void Q6_K_ref(const uint8_t* src, int64_t nb, float* y) {
  for (int64_t i = 0; i < nb * 256; ++i) {
    const uint8_t* b = src + (i / 256) * 210;
    const int e = static_cast<int>(i % 256), h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b[64 * h + 32 * (k & 1) + l];
    const int low = k < 2 ? lo & 0xF : lo >> 4;
    const int high = (b[128 + 32 * h + l] >> (2 * k)) & 3;
    const int8_t scale = static_cast<int8_t>(b[192 + 8 * h + 2 * k + l / 16]);
    y[i] = Half(b + 208) * static_cast<float>(scale) * static_cast<float>((low | high << 4) - 32);
  }
}

}  // namespace dequant_internal
}  // namespace compressd::engine
