#include "workers/engine/nn/ops_ref.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace compressd::engine {

void LinearRef(const float* x, int64_t t, int64_t in, const float* w, const float* bias,
               int64_t out, float* y) {
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias != nullptr ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += double{x[r * in + i]} * w[o * in + i];
      y[r * out + o] = static_cast<float>(acc);
    }
  }
}

void RmsNormRef(const float* x, const float* weight, int64_t t, int64_t dim, float eps, float* y) {
  for (int64_t r = 0; r < t; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double{x[r * dim + i]} * x[r * dim + i];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int64_t i = 0; i < dim; ++i) {
      y[r * dim + i] = static_cast<float>(x[r * dim + i] * inv * weight[i]);
    }
  }
}

void RopeRef(float* x, int64_t t, int n_heads, int head_dim, const int32_t* positions,
             const RopeTable& table) {
  const int half = table.half;  // partial rotary: the dims past 2 * half pass through
  for (int64_t r = 0; r < t; ++r) {
    const float* c = &table.cos[int64_t{positions[r]} * half];
    const float* s = &table.sin[int64_t{positions[r]} * half];
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + (r * n_heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * c[i] - b * s[i]);
        v[i + half] = static_cast<float>(b * c[i] + a * s[i]);
      }
    }
  }
}

void AttentionRef(const float* q, const float* k, const float* v, const int64_t* seq_start,
                  int64_t n_seqs, const AttentionShape& shape, float* out) {
  const int hd = shape.head_dim;
  const int64_t q_stride = int64_t{shape.n_heads} * hd;
  const int64_t kv_stride = int64_t{shape.n_kv_heads} * hd;
  const int group = shape.n_heads / shape.n_kv_heads;
  const double scale =
      shape.scale > 0 ? shape.scale : 1.0 / std::sqrt(static_cast<double>(hd));
  std::vector<double> scores;
  for (int64_t s = 0; s < n_seqs; ++s) {
    const int64_t begin = seq_start[s], end = seq_start[s + 1];
    for (int h = 0; h < shape.n_heads; ++h) {
      const int g = h / group;
      for (int64_t i = begin; i < end; ++i) {
        const float* qi = q + i * q_stride + int64_t{h} * hd;
        scores.assign(i - begin + 1, 0.0);
        double mx = -INFINITY;
        for (int64_t j = begin; j <= i; ++j) {
          const float* kj = k + j * kv_stride + int64_t{g} * hd;
          double dot = 0;
          for (int d = 0; d < hd; ++d) dot += double{qi[d]} * kj[d];
          scores[j - begin] = dot * scale;
          if (shape.softcap > 0)
            scores[j - begin] = shape.softcap * std::tanh(scores[j - begin] / shape.softcap);
          mx = std::max(mx, scores[j - begin]);
        }
        double sum = 0;
        for (double& sc : scores) sum += (sc = std::exp(sc - mx));
        float* oi = out + i * q_stride + int64_t{h} * hd;
        for (int d = 0; d < hd; ++d) {
          double acc = 0;
          for (int64_t j = begin; j <= i; ++j) {
            acc += scores[j - begin] * v[j * kv_stride + int64_t{g} * hd + d];
          }
          oi[d] = static_cast<float>(acc / sum);
        }
      }
    }
  }
}

void SiluMulRef(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const double g = gate[i];
    out[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
  }
}

namespace {

// The E4M3 value nearest a (>= 0) by search over every finite E4M3 value
// (normal (1 + m/8) 2^(e-7), subnormal m 2^-9): ties to the even mantissa,
// saturating at 448.
float NearestE4m3(float a) {
  float best = 0.0f, best_d = a;
  int best_m = 0;
  for (int e = 0; e < 16; ++e) {
    for (int m = 0; m < 8; ++m) {
      if (e == 15 && m == 7) continue;  // NaN
      const double v = e == 0 ? m / 512.0 : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
      const double d = std::fabs(a - v);
      if (d < best_d || (d == best_d && (m % 2 == 0) && (best_m % 2 == 1))) {
        best = static_cast<float>(v);
        best_d = static_cast<float>(d);
        best_m = m;
      }
    }
  }
  return a >= 448.0f ? 448.0f : best;
}

}  // namespace

void QuantizeActivationsRef(const float* x, int64_t t, int64_t dim, ActQuantType type, float* out) {
  for (int64_t r = 0; r < t; ++r) {
    float max = 0.0f;
    for (int64_t j = 0; j < dim; ++j) max = std::max(max, std::fabs(x[r * dim + j]));
    for (int64_t j = 0; j < dim; ++j) {
      const float v = x[r * dim + j];
      if (max == 0.0f) {
        out[r * dim + j] = 0.0f;
      } else if (type == ActQuantType::kFp8E4m3) {
        const float s = std::max(max / 448.0f, 1.0f / (448.0f * 512.0f));
        const float y = v * (1.0f / s);
        out[r * dim + j] = std::copysign(NearestE4m3(std::fabs(y)), y) * s;
      } else {
        const float q = std::nearbyint(v * (127.0f / max));
        out[r * dim + j] = std::min(std::max(q, -128.0f), 127.0f) * (max / 127.0f);
      }
    }
  }
}

void AddRef(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void EmbedRef(const float* table, int64_t dim, const int32_t* ids, int64_t t, float* out) {
  for (int64_t r = 0; r < t; ++r) {
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = table[int64_t{ids[r]} * dim + i];
  }
}

void SoftmaxStatsUpdateRef(const float* logits, int64_t t, int64_t n, int64_t v0, float* max,
                           float* sum, int32_t* argmax) {
  KlStatsUpdateRef(logits, logits, t, n, v0, max, sum, argmax, nullptr);
}

void KlStatsUpdateRef(const float* p, const float* q, int64_t t, int64_t n, int64_t v0,
                      float* max, float* sum, int32_t* argmax, float* cross) {
  for (int64_t r = 0; r < t; ++r) {
    const float* pr = p + r * n;
    const float* qr = q + r * n;
    float m = max[r];
    for (int64_t i = 0; i < n; ++i) {
      if (pr[i] > m) {
        m = pr[i];
        argmax[r] = static_cast<int32_t>(v0 + i);
      }
    }
    const double rescale = std::exp(double{max[r]} - m);
    double s = sum[r] * rescale;
    double c = cross != nullptr ? cross[r] * rescale : 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double e = std::exp(double{pr[i]} - m);
      s += e;
      c += e * (double{pr[i]} - qr[i]);
    }
    max[r] = m;
    sum[r] = static_cast<float>(s);
    if (cross != nullptr) cross[r] = static_cast<float>(c);
  }
}

}  // namespace compressd::engine
