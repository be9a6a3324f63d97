// QuantizeRows and the legacy (32-element block) encoders. The arithmetic of
// each legacy encoder is ggml's reference quantizer's, operation for
// operation in float32 (built with -ffp-contract=off), so the bytes equal
// ggml's and gguf-py's. See ggml_quantize.h for the block layouts.
#include "workers/engine/export/ggml_quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "workers/engine/export/ggml_quantize_internal.h"
#include "workers/engine/model/gguf/dequant.h"

namespace compressd::engine {
namespace ggml_quantize_internal {
namespace {

constexpr int kQK = 32;  // elements per legacy block

// The element of largest magnitude (the first one on ties), with its sign.
float SignedAbsMax(const float* x) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void MinMax(const float* x, float* min, float* max) {
  *min = FLT_MAX;
  *max = -FLT_MAX;
  for (int j = 0; j < kQK; ++j) {
    *min = std::min(*min, x[j]);
    *max = std::max(*max, x[j]);
  }
}

// Truncates toward zero (as ggml's integer casts) and caps at `maxq`.
inline int TruncCapped(float v, int maxq) { return std::min(maxq, static_cast<int>(v)); }

// Symmetric: q = trunc(x / d + offset + 0.5) with d = max / -offset, so the
// largest-magnitude element maps to code 0.
void EncodeSymmetric(const float* x, int offset, int maxq, float* d_out, int* q) {
  const float d = SignedAbsMax(x) / static_cast<float>(-offset);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float bias = static_cast<float>(offset) + 0.5f;
  for (int j = 0; j < kQK; ++j) q[j] = TruncCapped(x[j] * id + bias, maxq);
  *d_out = d;
}

// Asymmetric: q = trunc((x - min) / d + 0.5) with d = (max - min) / maxq.
void EncodeAsymmetric(const float* x, int maxq, float* d_out, float* min_out, int* q) {
  float min, max;
  MinMax(x, &min, &max);
  const float d = (max - min) / static_cast<float>(maxq);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) q[j] = std::max(0, TruncCapped((x[j] - min) * id + 0.5f, maxq));
  *d_out = d;
  *min_out = min;
}

}  // namespace

void EncodeF32(const float* x, int64_t nb, uint8_t* y) {
  std::memcpy(y, x, static_cast<size_t>(nb) * sizeof(float));
}

void EncodeF16(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t i = 0; i < nb; ++i) StoreU16(y + 2 * i, Half(x[i]));
}

void EncodeQ8_0(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t b = 0; b < nb; ++b, x += kQK, y += 2 + kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    StoreU16(y, Half(d));
    for (int j = 0; j < kQK; ++j) {
      y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(NearestInt(x[j] * id)));
    }
  }
}

void EncodeQ4_0(const float* x, int64_t nb, uint8_t* y) {
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK, y += 2 + kQK / 2) {
    float d;
    EncodeSymmetric(x, 8, 15, &d, q);
    StoreU16(y, Half(d));
    PackNibbles(q, y + 2);
  }
}

void EncodeQ4_1(const float* x, int64_t nb, uint8_t* y) {
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK, y += 4 + kQK / 2) {
    float d, min;
    EncodeAsymmetric(x, 15, &d, &min, q);
    StoreU16(y, Half(d));
    StoreU16(y + 2, Half(min));
    PackNibbles(q, y + 4);
  }
}

void EncodeQ5_0(const float* x, int64_t nb, uint8_t* y) {
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK, y += 6 + kQK / 2) {
    float d;
    EncodeSymmetric(x, 16, 31, &d, q);
    StoreU16(y, Half(d));
    StoreU32(y + 2, HighBits(q));
    PackNibbles(q, y + 6);
  }
}

void EncodeQ5_1(const float* x, int64_t nb, uint8_t* y) {
  int q[kQK];
  for (int64_t b = 0; b < nb; ++b, x += kQK, y += 8 + kQK / 2) {
    float d, min;
    EncodeAsymmetric(x, 31, &d, &min, q);
    StoreU16(y, Half(d));
    StoreU16(y + 2, Half(min));
    StoreU32(y + 4, HighBits(q));
    PackNibbles(q, y + 8);
  }
}

}  // namespace ggml_quantize_internal

namespace {

namespace qi = ggml_quantize_internal;
using engine::GgmlType;

struct Encoder {
  GgmlType type;
  qi::BlockEncodeFn fn;
};

constexpr Encoder kEncoders[] = {
    {GgmlType::kF32, qi::EncodeF32},   {GgmlType::kF16, qi::EncodeF16},
    {GgmlType::kQ8_0, qi::EncodeQ8_0}, {GgmlType::kQ4_0, qi::EncodeQ4_0},
    {GgmlType::kQ4_1, qi::EncodeQ4_1}, {GgmlType::kQ5_0, qi::EncodeQ5_0},
    {GgmlType::kQ5_1, qi::EncodeQ5_1}, {GgmlType::kQ2_K, qi::EncodeQ2_K},
    {GgmlType::kQ3_K, qi::EncodeQ3_K}, {GgmlType::kQ4_K, qi::EncodeQ4_K},
    {GgmlType::kQ5_K, qi::EncodeQ5_K}, {GgmlType::kQ6_K, qi::EncodeQ6_K},
};

qi::BlockEncodeFn FindEncoder(GgmlType type) {
  for (const Encoder& e : kEncoders) {
    if (e.type == type) return e.fn;
  }
  return nullptr;
}

// INVALID_ARGUMENT naming the first value that is non-finite or (unless
// `any_finite`) beyond the fp16 range.
absl::Status CheckValues(const float* x, int64_t rows, int64_t row_len, bool any_finite,
                         absl::string_view tensor) {
  constexpr float kHalfMax = 65504.0f;
  const int64_t n = rows * row_len;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isfinite(v) && (any_finite || std::fabs(v) <= kHalfMax)) continue;
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": value ", v, " at row ", i / row_len, ", column ", i % row_len,
        std::isfinite(v) ? " is outside the fp16 range (|x| <= 65504) that ggml types store"
                         : " is not finite"));
  }
  return absl::OkStatus();
}

}  // namespace

bool CanQuantize(GgmlType type) { return FindEncoder(type) != nullptr; }

absl::StatusOr<GgmlType> ParseQuantizeType(absl::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(name);
  for (const Encoder& e : kEncoders) {
    if (upper == engine::GgmlTypeName(e.type)) return e.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown or unsupported ggml type \"", name,
                   "\" (one of F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, "
                   "Q5_K, Q6_K)"));
}

absl::StatusOr<std::string> QuantizeRows(GgmlType type, const float* x, int64_t rows,
                                         int64_t row_len, absl::string_view tensor) {
  const qi::BlockEncodeFn fn = FindEncoder(type);
  if (fn == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": cannot quantize to ggml type ", engine::GgmlTypeName(type)));
  }
  const int64_t block = engine::GgmlTraits(static_cast<uint32_t>(type))->block_size;
  if (rows < 0 || row_len <= 0 || row_len % block != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": ", rows, " rows of length ", row_len, " cannot be stored as ",
        engine::GgmlTypeName(type), " (rows must be a positive multiple of ", block, " elements)"));
  }
  absl::StatusOr<uint64_t> row_bytes = engine::GgmlRowBytes(type, row_len);
  if (!row_bytes.ok()) return row_bytes.status();
  uint64_t total = 0;
  if (__builtin_mul_overflow(*row_bytes, static_cast<uint64_t>(rows), &total) ||
      total > (uint64_t{1} << 40)) {
    return absl::InvalidArgumentError(
        absl::StrCat(tensor, ": ", rows, " x ", row_len, " is too large to quantize in one piece"));
  }
  if (absl::Status s = CheckValues(x, rows, row_len, type == GgmlType::kF32, tensor); !s.ok()) {
    return s;
  }
  std::string out(static_cast<size_t>(total), '\0');
  if (total > 0) fn(x, rows * row_len / block, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

}  // namespace compressd::engine
