#include "workers/engine/nn/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "workers/engine/model/fp8.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define COMPRESSD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define COMPRESSD_CLONES
#endif

namespace compressd::engine::cpu {
namespace {

constexpr int kLanes = 16;

// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite
// split), exp(r) by Cephes' degree-6 polynomial. Branch-free so it vectorizes.
inline float ExpInline(float x) {
  x = std::min(std::max(x, -87.33f), 88.72f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kRound;
  const float n = t - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  uint32_t tb;
  std::memcpy(&tb, &t, sizeof(tb));
  const uint32_t e = (tb - 0x4B400000u) << 23;  // n as an integer, moved to the exponent
  uint32_t pb;
  std::memcpy(&pb, &p, sizeof(pb));
  pb += e;
  float out;
  std::memcpy(&out, &pb, sizeof(out));
  return out;
}

}  // namespace

float FastExp(float x) { return ExpInline(x); }

COMPRESSD_CLONES
void RmsNormRow(const float* x, const float* w, int64_t dim, float eps, float* y) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= dim; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += x[i + j] * x[i + j];
  }
  for (; i < dim; ++i) acc[0] += x[i] * x[i];
  float ss = 0;
  for (float a : acc) ss += a;
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
  for (int64_t k = 0; k < dim; ++k) y[k] = w[k] * (x[k] * inv);
}

void QuantizeActivationsRow(const float* x, int64_t dim, ActQuantType type, float* out) {
  float max = 0.0f;
  for (int64_t j = 0; j < dim; ++j) max = std::max(max, std::fabs(x[j]));
  if (max == 0.0f) {
    std::fill(out, out + dim, 0.0f);
    return;
  }
  if (type == ActQuantType::kFp8E4m3) {
    const float scale = std::max(max / kFp8E4m3Max, kFp8MinTokenScale), inv = 1.0f / scale;
    for (int64_t j = 0; j < dim; ++j) out[j] = Fp8E4m3Round(x[j] * inv) * scale;
    return;
  }
  const float qmax = 127.0f;
  const float inv = qmax / max, scale = max / qmax;
  for (int64_t j = 0; j < dim; ++j) {
    out[j] = std::min(std::max(std::nearbyint(x[j] * inv), -qmax - 1.0f), qmax) * scale;
  }
}

COMPRESSD_CLONES
void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + ExpInline(-g)) * up[i];
  }
}

void GeluTanhMul(const float* gate, const float* up, int64_t n, float* out) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = 0.5f * g * (1.0f + std::tanh(kSqrt2OverPi * (g + 0.044715f * g * g * g))) * up[i];
  }
}

void Softcap(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

COMPRESSD_CLONES
void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

COMPRESSD_CLONES
void ScaleInPlace(float* x, int64_t n, float a) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

COMPRESSD_CLONES
float RowMax(const float* x, int64_t n) {
  float m[kLanes];
  for (int j = 0; j < kLanes; ++j) m[j] = x[0];
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
  }
  for (; i < n; ++i) m[0] = x[i] > m[0] ? x[i] : m[0];
  float out = m[0];
  for (float v : m) out = v > out ? v : out;
  return out;
}

COMPRESSD_CLONES
float ExpShiftSum(float* x, int64_t n, float shift) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      x[i + j] = ExpInline(x[i + j] - shift);
      acc[j] += x[i + j];
    }
  }
  for (; i < n; ++i) {
    x[i] = ExpInline(x[i] - shift);
    acc[0] += x[i];
  }
  float sum = 0;
  for (float a : acc) sum += a;
  return sum;
}

COMPRESSD_CLONES
float ExpShiftSumConst(const float* x, int64_t n, float shift) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) acc[j] += ExpInline(x[i + j] - shift);
  }
  for (; i < n; ++i) acc[0] += ExpInline(x[i] - shift);
  float sum = 0;
  for (float a : acc) sum += a;
  return sum;
}

COMPRESSD_CLONES
float ExpShiftSumCross(const float* p, const float* q, int64_t n, float shift, float* cross) {
  float acc[kLanes] = {}, cr[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) {
      const float e = ExpInline(p[i + j] - shift);
      acc[j] += e;
      cr[j] += e * (p[i + j] - q[i + j]);
    }
  }
  for (; i < n; ++i) {
    const float e = ExpInline(p[i] - shift);
    acc[0] += e;
    cr[0] += e * (p[i] - q[i]);
  }
  float sum = 0, c = 0;
  for (int j = 0; j < kLanes; ++j) {
    sum += acc[j];
    c += cr[j];
  }
  *cross = c;
  return sum;
}

COMPRESSD_CLONES
void RopeRow(float* x, int n_heads, int head_dim, int half, const float* cos, const float* sin) {
  for (int h = 0; h < n_heads; ++h) {
    float* lo = x + int64_t{h} * head_dim;
    float* hi = lo + half;
    for (int i = 0; i < half; ++i) {
      const float a = lo[i], b = hi[i];
      lo[i] = a * cos[i] - b * sin[i];
      hi[i] = b * cos[i] + a * sin[i];
    }
  }
}

}  // namespace compressd::engine::cpu
