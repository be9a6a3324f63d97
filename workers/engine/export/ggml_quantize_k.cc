// The k-quant encoders Q4_K, Q5_K, Q6_K and the sub-block fits they share
// with Q2_K / Q3_K (ggml_quantize_k_low.cc); block layouts in ggml_quantize.h.
//
// Q4_K / Q5_K: each 32-element sub-block is fitted as x ~ scale * q - min
// (q in [0, nmax], min >= 0) by trying 21 candidate grids around the min-max
// one (nmax +- 1 steps over the range), refitting scale and min of each by
// weighted least squares on its codes, and keeping the fit with the smallest
// weighted error (weights rms(sub-block) + |x|, favouring large weights). The
// fp16 super-block scales are d = max(scale) / 63 and dmin = max(min) / 63,
// rounded UP to the next fp16 value (so no sub-block scale overflows 63 and a
// tiny one never becomes 0 in fp16's coarse subnormal range). Each sub-block's
// 6-bit scale and min start at their nearest values and take the best of the
// 3 x 3 neighbouring pairs by weighted error; finally every element is
// re-rounded against the decoded d * sc and dmin * m.
//
// Q6_K: each 16-element sub-block gets a signed scale (the element of largest
// magnitude maps near code -32, 19 candidates, least-squares refit with
// weights x^2); |d| = max|scale| / 128 is rounded up to fp16 (sign chosen so
// the largest scale is -128), each int8 sub-block scale is its nearest value
// or a neighbour (smallest x^2-weighted error), and the elements are
// re-rounded to [-32, 31] against the decoded d * sc.
//
// On the golden rows (tests/golden/ggml_quantize_fixtures.py) the error is at
// or below that of ggml's reference quantizers (quantize_row_q*_K_ref).
#include <algorithm>
#include <cmath>

#include "workers/engine/export/ggml_quantize_internal.h"

namespace compressd::engine::ggml_quantize_internal {
namespace {

constexpr int kSub4 = 32;  // sub-block of Q4_K / Q5_K
constexpr int kSub6 = 16;  // sub-block of Q6_K

}  // namespace

float AsymError(const float* x, const float* w, int n, int nmax, const AsymFit& f) {
  float err = 0.0f;
  const float inv = f.scale > 0.0f ? 1.0f / f.scale : 0.0f;
  for (int i = 0; i < n; ++i) {
    const int q = Clamp(NearestInt((x[i] + f.min) * inv), 0, nmax);
    const float diff = f.scale * static_cast<float>(q) - f.min - x[i];
    err += w[i] * diff * diff;
  }
  return err;
}

namespace {

// The weighted least-squares (scale, min) for the codes of grid `iscale`
// over [lo, ...]; false when the codes do not determine a positive scale.
bool RefitAsym(const float* x, const float* w, int n, int nmax, float lo, float iscale,
               AsymFit* out) {
  float sw = 0.0f, swl = 0.0f, swl2 = 0.0f, swx = 0.0f, swlx = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float l = static_cast<float>(Clamp(NearestInt(iscale * (x[i] - lo)), 0, nmax));
    sw += w[i];
    swl += w[i] * l;
    swl2 += w[i] * l * l;
    swx += w[i] * x[i];
    swlx += w[i] * l * x[i];
  }
  const float det = sw * swl2 - swl * swl;
  if (!(det > 0.0f)) return false;
  float scale = (sw * swlx - swl * swx) / det;
  float offset = (swl2 * swx - swl * swlx) / det;
  if (offset > 0.0f) {  // the format's offset is -dmin * m <= 0
    offset = 0.0f;
    scale = swlx / swl2;
  }
  if (!(scale > 0.0f)) return false;
  *out = {scale, -offset};
  return true;
}

}  // namespace

AsymFit FitAsym(const float* x, const float* w, int n, int nmax) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  if (!(hi > lo)) return {0.0f, -lo};  // constant (and <= 0): every element is -min
  AsymFit best{(hi - lo) / static_cast<float>(nmax), -lo};
  float best_err = AsymError(x, w, n, nmax, best);
  for (int step = -10; step <= 10; ++step) {
    const float iscale = (static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / (hi - lo);
    AsymFit cand;
    if (!RefitAsym(x, w, n, nmax, lo, iscale, &cand)) continue;
    const float err = AsymError(x, w, n, nmax, cand);
    if (err < best_err) {
      best = cand;
      best_err = err;
    }
  }
  return best;
}

namespace {

// Packs 6-bit scales and mins as the 12-byte Q4_K/Q5_K scale field.
void PackScalesK4(const int* sc, const int* mn, uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>(sc[j]);
    s[j + 4] = static_cast<uint8_t>(mn[j]);
  }
  for (int j = 4; j < 8; ++j) {
    s[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
    s[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
    s[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
  }
}

}  // namespace

void RefineScaleMin(const float* x, const float* w, int n, int nmax, int smax, float d, float dmin,
                    int* sc, int* mn) {
  auto error = [&](int s, int m) {
    return AsymError(x, w, n, nmax, {d * static_cast<float>(s), dmin * static_cast<float>(m)});
  };
  const int sc0 = *sc, mn0 = *mn;
  float best = error(sc0, mn0);
  for (int s = std::max(0, sc0 - 1); s <= std::min(smax, sc0 + 1); ++s) {
    for (int m = std::max(0, mn0 - 1); m <= std::min(smax, mn0 + 1); ++m) {
      const float err = error(s, m);
      if (err < best) {
        best = err;
        *sc = s;
        *mn = m;
      }
    }
  }
}

namespace {

// One Q4_K/Q5_K super-block's parts: d, dmin, the scales and mins and the
// codes (in [0, nmax]) of the 256 elements.
struct AsymBlock {
  float d = 0.0f, dmin = 0.0f;
  int sc[8], mn[8];
  int q[kQK_K];
};

void EncodeSuperBlockAsym(const float* x, int nmax, AsymBlock* b) {
  AsymFit fit[8];
  float w[8][kSub4];
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub4 * j;
    float sum2 = 0.0f;
    for (int i = 0; i < kSub4; ++i) sum2 += xs[i] * xs[i];
    const float rms = std::sqrt(sum2 / kSub4);
    for (int i = 0; i < kSub4; ++i) w[j][i] = rms + std::fabs(xs[i]);
    fit[j] = FitAsym(xs, w[j], kSub4, nmax);
    max_scale = std::max(max_scale, fit[j].scale);
    max_min = std::max(max_min, fit[j].min);
  }
  const float d = RoundUpToHalf(max_scale / 63.0f), dmin = RoundUpToHalf(max_min / 63.0f);
  b->d = d;
  b->dmin = dmin;
  for (int j = 0; j < 8; ++j) {
    b->sc[j] = d > 0.0f ? Clamp(NearestInt(fit[j].scale / d), 0, 63) : 0;
    b->mn[j] = dmin > 0.0f ? Clamp(NearestInt(fit[j].min / dmin), 0, 63) : 0;
    RefineScaleMin(x + kSub4 * j, w[j], kSub4, nmax, 63, d, dmin, &b->sc[j], &b->mn[j]);
    const float ds = d * static_cast<float>(b->sc[j]), dm = dmin * static_cast<float>(b->mn[j]);
    for (int i = 0; i < kSub4; ++i) {
      const int k = kSub4 * j + i;
      b->q[k] = ds > 0.0f ? Clamp(NearestInt((x[k] + dm) / ds), 0, nmax) : 0;
    }
  }
}

}  // namespace

float FitSym(const float* x, int n, int nmax) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (amax < std::fabs(x[i])) {
      amax = std::fabs(x[i]);
      max = x[i];
    }
  }
  if (amax < 1e-30f) return 0.0f;
  float best_scale = 0.0f, best_gain = -1.0f;  // gain = sumlx^2 / suml2 = error reduction
  for (int k = -9; k <= 9; ++k) {
    const float iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / max;
    float sumlx = 0.0f, suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float l = static_cast<float>(Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0.0f && sumlx * sumlx / suml2 > best_gain) {
      best_gain = sumlx * sumlx / suml2;
      best_scale = sumlx / suml2;
    }
  }
  return best_scale;
}

namespace {

// x^2-weighted error of x[0, n) ~ ds * l, l in [-nmax, nmax - 1] rounded to the nearest.
float SymError(const float* x, int n, int nmax, float ds) {
  float err = 0.0f;
  const float inv = ds != 0.0f ? 1.0f / ds : 0.0f;
  for (int i = 0; i < n; ++i) {
    const float l = static_cast<float>(Clamp(NearestInt(x[i] * inv), -nmax, nmax - 1));
    const float diff = ds * l - x[i];
    err += x[i] * x[i] * diff * diff;
  }
  return err;
}

// The signed quantized scale in [-smax, smax - 1] of a sub-block with fitted
// scale s under super-block scale d: the nearest value or one step either
// side, by SymError.
int RefineScaleSym(const float* x, int n, int nmax, int smax, float s, float d) {
  if (d == 0.0f) return 0;
  const int sc0 = Clamp(NearestInt(s / d), -smax, smax - 1);
  int best_sc = sc0;
  float best = SymError(x, n, nmax, d * static_cast<float>(sc0));
  for (int sc = std::max(-smax, sc0 - 1); sc <= std::min(smax - 1, sc0 + 1); ++sc) {
    const float err = SymError(x, n, nmax, d * static_cast<float>(sc));
    if (err < best) {
      best = err;
      best_sc = sc;
    }
  }
  return best_sc;
}

// One Q6_K super-block.
void EncodeSuperBlockQ6(const float* x, uint8_t* y) {
  int q[kQK_K], sc[kQK_K / kSub6];
  float s[kQK_K / kSub6];
  float smax = 0.0f;
  for (int j = 0; j < kQK_K / kSub6; ++j) {
    s[j] = FitSym(x + kSub6 * j, kSub6, 32);
    if (std::fabs(s[j]) > std::fabs(smax)) smax = s[j];
  }
  // |d| rounded up so that |s / d| <= 128; its sign makes s_max's scale -128.
  const float d =
      smax == 0.0f ? 0.0f : std::copysign(RoundUpToHalf(std::fabs(smax) / 128.0f), -smax);
  for (int j = 0; j < kQK_K / kSub6; ++j) {
    sc[j] = RefineScaleSym(x + kSub6 * j, kSub6, 32, 128, s[j], d);
    const float ds = d * static_cast<float>(sc[j]);
    for (int i = 0; i < kSub6; ++i) {
      const int k = kSub6 * j + i;
      q[k] = (ds != 0.0f ? Clamp(NearestInt(x[k] / ds), -32, 31) : 0) + 32;
    }
  }
  PackQ6_K(q, sc, d, y);
}

// Per 64 elements, 32 bytes: element l in the low nibble, element l + 32 in the high one.
void PackNibblesK(const int* q, uint8_t* qs) {
  for (int c = 0; c < kQK_K / 64; ++c) {
    for (int l = 0; l < 32; ++l) {
      qs[32 * c + l] =
          static_cast<uint8_t>((q[64 * c + l] & 0xF) | ((q[64 * c + 32 + l] & 0xF) << 4));
    }
  }
}

}  // namespace

void PackQ6_K(const int* q, const int* sc, float d, uint8_t* y) {
  for (int j = 0; j < kQK_K / kSub6; ++j) {
    y[192 + j] = static_cast<uint8_t>(static_cast<int8_t>(sc[j]));
  }
  StoreU16(y + 208, Half(d));
  // Per 128 elements, 64 bytes of nibbles and 32 of 2-bit pairs.
  for (int h = 0; h < 2; ++h, q += 128) {
    uint8_t* ql = y + 64 * h;
    uint8_t* qh = y + 128 + 32 * h;
    for (int l = 0; l < 32; ++l) {
      const int q1 = q[l], q2 = q[l + 32], q3 = q[l + 64], q4 = q[l + 96];
      ql[l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
      qh[l] =
          static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
    }
  }
}

void PackQ4_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y) {
  StoreU16(y, Half(d));
  StoreU16(y + 2, Half(dmin));
  PackScalesK4(sc, mn, y + 4);
  PackNibblesK(q, y + 16);
}

void PackQ5_K(const int* q, const int* sc, const int* mn, float d, float dmin, uint8_t* y) {
  StoreU16(y, Half(d));
  StoreU16(y + 2, Half(dmin));
  PackScalesK4(sc, mn, y + 4);
  uint8_t* qh = y + 16;
  std::fill(qh, qh + 32, uint8_t{0});
  for (int c = 0; c < kQK_K / 64; ++c) {
    for (int l = 0; l < 32; ++l) {
      qh[l] |= static_cast<uint8_t>(((q[64 * c + l] >> 4) & 1) << (2 * c));
      qh[l] |= static_cast<uint8_t>(((q[64 * c + 32 + l] >> 4) & 1) << (2 * c + 1));
    }
  }
  PackNibblesK(q, y + 48);
}

void EncodeQ4_K(const float* x, int64_t nb, uint8_t* y) {
  AsymBlock b;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += 144) {
    EncodeSuperBlockAsym(x, 15, &b);
    PackQ4_K(b.q, b.sc, b.mn, b.d, b.dmin, y);
  }
}

void EncodeQ5_K(const float* x, int64_t nb, uint8_t* y) {
  AsymBlock b;
  for (int64_t i = 0; i < nb; ++i, x += kQK_K, y += 176) {
    EncodeSuperBlockAsym(x, 31, &b);
    PackQ5_K(b.q, b.sc, b.mn, b.d, b.dmin, y);
  }
}

void EncodeQ6_K(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t b = 0; b < nb; ++b, x += kQK_K, y += 210) EncodeSuperBlockQ6(x, y);
}

}  // namespace compressd::engine::ggml_quantize_internal
