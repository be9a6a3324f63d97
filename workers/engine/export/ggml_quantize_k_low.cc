// The 2- and 3-bit k-quant encoders (Q2_K, Q3_K); block layouts in
// ggml_quantize.h, sub-block fits in ggml_quantize_k.cc.
//
// Q2_K: each 16-element sub-block is fitted as x ~ scale * q - min, q in
// [0, 3] (FitAsym, weights rms(sub-block) + |x| as for Q4_K). The fp16
// super-block scales are d = max(scale) / 15 and dmin = max(min) / 15, rounded
// up to fp16; each 4-bit scale and min starts at its nearest value and takes
// the best of the 3 x 3 neighbouring pairs; the elements are re-rounded
// against the decoded d * sc and dmin * m.
//
// Q3_K: each 16-element sub-block gets a signed scale, x ~ scale * l with l in
// [-4, 3] (FitSym, weights x^2); |d| = max|scale| / 32 rounded up to fp16, its
// sign making the largest scale -32. Each 6-bit scale (stored + 32) is then
// the one of all 64 with the smallest squared error, its elements rounded to
// the nearest of [-4, 3] against d * sc. Zeros stay exactly zero.
//
// Measured on the golden rows (tests/golden/ggml_quantize_fixtures.py),
// relative RMS error against ggml's quantize_row_q*_K_ref: Q2_K 0.267 vs
// 0.293 (Gaussian), 0.280 vs 0.315 (SmolLM2 ffn_down); Q3_K 0.143 vs 0.151
// and 0.149 vs 0.157.
//
// Cost: about 20 passes over each Q2_K sub-block, 64 over each Q3_K one.
// Stateless and thread-safe.
#include <algorithm>
#include <cmath>

#include "workers/engine/export/ggml_quantize_internal.h"

namespace compressd::engine::ggml_quantize_internal {
namespace {

constexpr int kSub = 16;             // sub-block of Q2_K and Q3_K
constexpr int kSubs = kQK_K / kSub;  // 16 sub-blocks per super-block

// The 2-bit planes of Q2_K / Q3_K: per 128 elements, 32 bytes; element
// 32j + l of the half sits at bits 2j of byte l.
void PackTwoBit(const int* q, uint8_t* qs) {
  std::fill(qs, qs + kQK_K / 4, uint8_t{0});
  for (int e = 0; e < kQK_K; ++e) {
    const int h = e / 128, w = e % 128;
    qs[32 * h + w % 32] |= static_cast<uint8_t>((q[e] & 3) << (2 * (w / 32)));
  }
}

}  // namespace

void PackQ2_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y) {
  for (int j = 0; j < kSubs; ++j) y[j] = static_cast<uint8_t>(sc[j] | (mn[j] << 4));
  PackTwoBit(q, y + 16);
  StoreU16(y + 80, Half(d));
  StoreU16(y + 82, Half(dmin));
}

namespace {

// One Q2_K super-block: scales[16] at y, qs[64] at y + 16, d and dmin at y + 80.
void EncodeSuperBlockQ2(const float* x, uint8_t* y) {
  AsymFit fit[kSubs];
  float w[kSubs][kSub];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < kSubs; ++j) {
    const float* xs = x + kSub * j;
    float sum2 = 0.0f;
    for (int i = 0; i < kSub; ++i) sum2 += xs[i] * xs[i];
    const float rms = std::sqrt(sum2 / kSub);
    for (int i = 0; i < kSub; ++i) w[j][i] = rms + std::fabs(xs[i]);
    fit[j] = FitAsym(xs, w[j], kSub, 3);
    max_scale = std::max(max_scale, fit[j].scale);
    max_min = std::max(max_min, fit[j].min);
  }
  const float d = RoundUpToHalf(max_scale / 15.0f), dmin = RoundUpToHalf(max_min / 15.0f);
  int q[kQK_K], sc[kSubs], mn[kSubs];
  for (int j = 0; j < kSubs; ++j) {
    sc[j] = d > 0.0f ? Clamp(NearestInt(fit[j].scale / d), 0, 15) : 0;
    mn[j] = dmin > 0.0f ? Clamp(NearestInt(fit[j].min / dmin), 0, 15) : 0;
    RefineScaleMin(x + kSub * j, w[j], kSub, 3, 15, d, dmin, &sc[j], &mn[j]);
    const float ds = d * static_cast<float>(sc[j]), dm = dmin * static_cast<float>(mn[j]);
    for (int i = 0; i < kSub; ++i) {
      const int k = kSub * j + i;
      q[k] = ds > 0.0f ? Clamp(NearestInt((x[k] + dm) / ds), 0, 3) : 0;
    }
  }
  PackQ2_K(q, sc, mn, d, dmin, y);
}

// The 6-bit signed scale in [-32, 31] of a Q3_K sub-block under super-block
// scale d with the smallest squared error, every value tried (64 x 16
// roundings: the sub-blocks are small and the fitted scale's nearest value
// is often not the best once d is fixed).
int BestScaleQ3(const float* x, float d) {
  if (d == 0.0f) return 0;
  int best_sc = 0;
  float best = 0.0f;
  for (int i = 0; i < kSub; ++i) best += x[i] * x[i];
  for (int sc = -32; sc <= 31; ++sc) {
    if (sc == 0) continue;
    const float ds = d * static_cast<float>(sc), inv = 1.0f / ds;
    float err = 0.0f;
    for (int i = 0; i < kSub; ++i) {
      const float diff = ds * static_cast<float>(Clamp(NearestInt(x[i] * inv), -4, 3)) - x[i];
      err += diff * diff;
    }
    if (err < best) {
      best = err;
      best_sc = sc;
    }
  }
  return best_sc;
}

// Q3_K's 12-byte scale field: 16 six-bit values (sc + 32), low 4 bits in the
// low (j < 8) or high nibble of s[j % 8], high 2 bits at bit 2 (j / 4) of s[8 + j % 4].
void PackScalesQ3(const int* sc, uint8_t* s) {
  std::fill(s, s + 12, uint8_t{0});
  for (int j = 0; j < kSubs; ++j) {
    const int l = sc[j] + 32;
    s[j % 8] |= static_cast<uint8_t>((l & 0xF) << (j < 8 ? 0 : 4));
    s[8 + j % 4] |= static_cast<uint8_t>((l >> 4) << (2 * (j / 4)));
  }
}

// One Q3_K super-block.
void EncodeSuperBlockQ3(const float* x, uint8_t* y) {
  float s[kSubs];
  float smax = 0.0f;
  for (int j = 0; j < kSubs; ++j) {
    s[j] = FitSym(x + kSub * j, kSub, 4);
    if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
  }
  const float d =
      smax == 0.0f ? 0.0f : std::copysign(RoundUpToHalf(std::fabs(smax) / 32.0f), -smax);
  int sc[kSubs], q[kQK_K];
  for (int j = 0; j < kSubs; ++j) {
    sc[j] = BestScaleQ3(x + kSub * j, d);
    const float ds = d * static_cast<float>(sc[j]);
    for (int i = 0; i < kSub; ++i) {
      const int k = kSub * j + i;
      q[k] = (ds != 0.0f ? Clamp(NearestInt(x[k] / ds), -4, 3) : 0) + 4;
    }
  }
  PackQ3_K(q, sc, d, y);
}

}  // namespace

void PackQ3_K(const int* q, const int* sc, float d, uint8_t* y) {
  uint8_t* hmask = y;
  std::fill(hmask, hmask + 32, uint8_t{0});
  for (int e = 0; e < kQK_K; ++e) {
    if (q[e] > 3) hmask[e % 32] |= static_cast<uint8_t>(1 << (e / 32));
  }
  PackTwoBit(q, y + 32);
  PackScalesQ3(sc, y + 96);
  StoreU16(y + 108, Half(d));
}

void EncodeQ2_K(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t b = 0; b < nb; ++b, x += kQK_K, y += 84) EncodeSuperBlockQ2(x, y);
}

void EncodeQ3_K(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t b = 0; b < nb; ++b, x += kQK_K, y += 110) EncodeSuperBlockQ3(x, y);
}

}  // namespace compressd::engine::ggml_quantize_internal
