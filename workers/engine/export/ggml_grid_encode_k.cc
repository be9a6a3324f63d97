// Exact encoding of lattice grids as k-quants; see ggml_grid_encode_internal.h.
//
// A super-block's d is recovered from the scales themselves: with s_max the
// largest sub-block scale, d = s_max / k for the k in [1, sc_max] that makes d
// an fp16 value and every scale exactly d * sc. A grid built with scale_bits
// has such a d by construction (its scales are fl(d * sc) with d fp16 and
// sc <= 127, a product exact in float, so s_max / k recovers d exactly); any
// other grid almost never does, and is then written another way.
//
// The types with a min (Q2_K, Q4_K, Q5_K: value d * sc * q - dmin * m) take
// the codes as they are, and each sub-block's min scale * zero must be
// dmin * m for one fp16 dmin per super-block and m in [0, m_max]. An
// asymmetric lattice grid's zero is fl(dmin * m / scale), so scale * zero is
// dmin * m up to two float roundings: dmin is recovered the same way as d,
// with a tolerance of 2^-20 of the largest min. (A symmetric lattice grid
// fits too where dmin = d and m = sc * zero stays in range.)
#include <algorithm>
#include <cmath>

#include "workers/engine/export/ggml_grid_encode_internal.h"
#include "workers/engine/export/ggml_quantize_internal.h"

namespace compressd::engine::ggml_grid_internal {
namespace {

namespace qi = ggml_quantize_internal;
using engine::GgmlType;
using engine::QuantizedTensor;

constexpr int64_t kSuper = 256;
constexpr int kMaxSubs = 16;

struct KFormat {
  int lo, hi;    // range of the stored level (code - zero, or the code itself with a min)
  int sc_max;    // largest sub-block scale integer used
  int64_t sub;   // inputs per sub-block
  bool has_min;  // value = d * sc * code - dmin * m
  int block_bytes;
};

KFormat Format(GgmlType type) {
  switch (type) {
    case GgmlType::kQ2_K:
      return {0, 3, 15, 16, true, 84};
    case GgmlType::kQ3_K:
      return {-4, 3, 31, 16, false, 110};
    case GgmlType::kQ4_K:
      return {0, 15, 63, 32, true, 144};
    case GgmlType::kQ5_K:
      return {0, 31, 63, 32, true, 176};
    default:
      return {-32, 31, 127, 16, false, 210};  // Q6_K
  }
}

int64_t Group(const QuantizedTensor& q, int64_t r, int64_t c) {
  return r * q.groups + q.group_index[c];
}

// The integers n[j] with v[j] == step * n[j] (within tol) for one fp16 step
// = v_max / k, k in [1, n_max] tried from the top; false when none fits.
// All-zero v gives step 0 and n = 0.
bool OnOneStep(const float* v, int subs, int n_min, int n_max, float tol, float* step, int* n) {
  float v_max = 0.0f;
  for (int j = 0; j < subs; ++j) v_max = std::max(v_max, v[j]);
  if (!(v_max > 0.0f)) {
    std::fill(n, n + subs, 0);
    *step = 0.0f;
    return n_min == 0;
  }
  for (int k = n_max; k >= 1; --k) {
    const float cand = qi::RoundToHalf(v_max / static_cast<float>(k));
    if (!(cand > 0.0f) || (tol == 0.0f && cand * static_cast<float>(k) != v_max)) continue;
    bool all = true;
    for (int j = 0; j < subs && all; ++j) {
      const float m = std::nearbyint(v[j] / cand);
      all = m >= static_cast<float>(n_min) && m <= static_cast<float>(n_max) &&
            std::fabs(cand * m - v[j]) <= tol * v_max;
      n[j] = static_cast<int>(m);
    }
    if (all) {
      *step = cand;
      return true;
    }
  }
  return false;
}

struct SuperBlock {
  float d = 0.0f, dmin = 0.0f;
  int sc[kMaxSubs], m[kMaxSubs];
};

// The scales (and mins) of the super-block of row r at c0; false when none fits.
bool Recover(const QuantizedTensor& q, const KFormat& f, int64_t r, int64_t c0, SuperBlock* b) {
  const int subs = static_cast<int>(kSuper / f.sub);
  float s[kMaxSubs], mins[kMaxSubs];
  for (int j = 0; j < subs; ++j) {
    const int64_t g = Group(q, r, c0 + j * f.sub);
    s[j] = q.scales[g];
    mins[j] = q.scales[g] * q.zeros[g];
    if (f.has_min && !(mins[j] >= 0.0f)) return false;
  }
  if (!OnOneStep(s, subs, 1, f.sc_max, 0.0f, &b->d, b->sc)) return false;
  return !f.has_min || OnOneStep(mins, subs, 0, f.sc_max, 0x1p-20f, &b->dmin, b->m);
}

int Level(const QuantizedTensor& q, const KFormat& f, int64_t r, int64_t c) {
  const int code = q.codes[r * q.cols + c];
  return f.has_min ? code : code - static_cast<int>(q.zeros[Group(q, r, c)]);
}

}  // namespace

bool IsKQuant(GgmlType type) {
  return type == GgmlType::kQ2_K || type == GgmlType::kQ3_K || type == GgmlType::kQ4_K ||
         type == GgmlType::kQ5_K || type == GgmlType::kQ6_K;
}

bool KQuantFits(const QuantizedTensor& q, GgmlType type) {
  if (!IsKQuant(type) || q.rows <= 0 || q.cols % kSuper != 0) return false;
  const KFormat f = Format(type);
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.group_index[c] != q.group_index[c - c % f.sub]) return false;
  }
  if (!f.has_min) {
    for (float z : q.zeros) {
      if (z != std::nearbyint(z)) return false;
    }
  }
  SuperBlock b;
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int l = Level(q, f, r, c);
      if (l < f.lo || l > f.hi) return false;
    }
    for (int64_t c0 = 0; c0 < q.cols; c0 += kSuper) {
      if (!Recover(q, f, r, c0, &b)) return false;
    }
  }
  return true;
}

void EncodeKQuantRow(const QuantizedTensor& q, GgmlType type, int64_t r, uint8_t* y) {
  const KFormat f = Format(type);
  SuperBlock b;
  int codes[kSuper];
  for (int64_t c0 = 0; c0 < q.cols; c0 += kSuper, y += f.block_bytes) {
    Recover(q, f, r, c0, &b);
    for (int64_t e = 0; e < kSuper; ++e) codes[e] = Level(q, f, r, c0 + e) - f.lo;
    switch (type) {
      case GgmlType::kQ2_K:
        qi::PackQ2_K(codes, b.sc, b.m, b.d, b.dmin, y);
        break;
      case GgmlType::kQ3_K:
        qi::PackQ3_K(codes, b.sc, b.d, y);
        break;
      case GgmlType::kQ4_K:
        qi::PackQ4_K(codes, b.sc, b.m, b.d, b.dmin, y);
        break;
      case GgmlType::kQ5_K:
        qi::PackQ5_K(codes, b.sc, b.m, b.d, b.dmin, y);
        break;
      default:
        qi::PackQ6_K(codes, b.sc, b.d, y);
        break;
    }
  }
}

}  // namespace compressd::engine::ggml_grid_internal
