// Exact encoding of lattice grids as Q3_K / Q6_K; see ggml_grid_encode_internal.h.
//
// A super-block's d is recovered from the scales themselves: with s_max the
// largest sub-block scale, d = s_max / k for the k in [1, sc_max] that makes d
// an fp16 value and every scale exactly d * sc. A grid built with scale_bits
// has such a d by construction (its scales are fl(d * sc) with d fp16 and
// sc <= 127, a product exact in float, so s_max / k recovers d exactly); any
// other grid almost never does, and is then written another way.
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
constexpr int64_t kSub = 16;

struct KFormat {
  int lo, hi;  // range of code - zero
  int sc_max;  // largest sub-block scale integer used
};

KFormat Format(GgmlType type) {
  return type == GgmlType::kQ3_K ? KFormat{-4, 3, 31} : KFormat{-32, 31, 127};
}

float Scale(const QuantizedTensor& q, int64_t r, int64_t c) {
  return q.scales[r * q.groups + q.group_index[c]];
}

// The super-block's d and its 16 sub-block scale integers; false when none fits.
bool SuperBlockScales(const QuantizedTensor& q, int64_t r, int64_t c0, int sc_max, float* d,
                      int* sc) {
  float s_max = 0.0f;
  for (int64_t j = 0; j < kSuper / kSub; ++j) s_max = std::max(s_max, Scale(q, r, c0 + j * kSub));
  if (!(s_max > 0.0f)) return false;
  for (int k = sc_max; k >= 1; --k) {
    const float cand = s_max / static_cast<float>(k);
    if (qi::RoundToHalf(cand) != cand) continue;
    bool all = true;
    for (int64_t j = 0; j < kSuper / kSub && all; ++j) {
      const float s = Scale(q, r, c0 + j * kSub);
      const float n = std::nearbyint(s / cand);
      all = n >= 1.0f && n <= static_cast<float>(sc_max) && cand * n == s;
      sc[j] = static_cast<int>(n);
    }
    if (all) {
      *d = cand;
      return true;
    }
  }
  return false;
}

int Level(const QuantizedTensor& q, int64_t r, int64_t c) {
  return q.codes[r * q.cols + c] - static_cast<int>(q.zeros[r * q.groups + q.group_index[c]]);
}

}  // namespace

bool IsKQuant(GgmlType type) { return type == GgmlType::kQ3_K || type == GgmlType::kQ6_K; }

bool KQuantFits(const QuantizedTensor& q, GgmlType type) {
  if (!IsKQuant(type) || q.rows <= 0 || q.cols % kSuper != 0) return false;
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.group_index[c] != q.group_index[c - c % kSub]) return false;
  }
  for (float z : q.zeros) {
    if (z != std::nearbyint(z)) return false;
  }
  const KFormat f = Format(type);
  float d;
  int sc[kSuper / kSub];
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int l = Level(q, r, c);
      if (l < f.lo || l > f.hi) return false;
    }
    for (int64_t c0 = 0; c0 < q.cols; c0 += kSuper) {
      if (!SuperBlockScales(q, r, c0, f.sc_max, &d, sc)) return false;
    }
  }
  return true;
}

void EncodeKQuantRow(const QuantizedTensor& q, GgmlType type, int64_t r, uint8_t* y) {
  const KFormat f = Format(type);
  const int64_t block_bytes = type == GgmlType::kQ3_K ? 110 : 210;
  float d = 0.0f;
  int sc[kSuper / kSub], codes[kSuper];
  for (int64_t c0 = 0; c0 < q.cols; c0 += kSuper, y += block_bytes) {
    SuperBlockScales(q, r, c0, f.sc_max, &d, sc);
    for (int64_t e = 0; e < kSuper; ++e) codes[e] = Level(q, r, c0 + e) - f.lo;
    if (type == GgmlType::kQ3_K) {
      qi::PackQ3_K(codes, sc, d, y);
    } else {
      qi::PackQ6_K(codes, sc, d, y);
    }
  }
}

}  // namespace compressd::engine::ggml_grid_internal
