// Exact encoding of QuantizedTensor codes as ggml blocks (the k-quants in
// ggml_grid_encode_k.cc); see ggml_grid_encode.h.
#include "workers/engine/export/ggml_grid_encode.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "workers/engine/export/ggml_grid_encode_internal.h"
#include "workers/engine/export/ggml_quantize_internal.h"
#include "workers/engine/model/gguf/dequant.h"

namespace compressd::engine {
namespace {

namespace qi = ggml_quantize_internal;
namespace gi = ggml_grid_internal;
using engine::GgmlType;
using engine::QuantizedTensor;

constexpr int64_t kQK = 32;

// How a type stores a block's codes.
struct BlockFormat {
  GgmlType type;
  bool has_min;  // value = d * q + m (q = code), else d * (q - offset) (q = code - zero + offset)
  int offset;
  int max_q;       // q in [0, max_q]
  int header;      // bytes before the codes: d (and m), and qh for the 5-bit types
  bool high_bits;  // 5-bit: a u32 of 5th bits before the nibbles
};

constexpr BlockFormat kFormats[] = {
    {GgmlType::kQ4_0, false, 8, 15, 2, false},    {GgmlType::kQ4_1, true, 0, 15, 4, false},
    {GgmlType::kQ5_0, false, 16, 31, 6, true},    {GgmlType::kQ5_1, true, 0, 31, 8, true},
    {GgmlType::kQ8_0, false, 128, 255, 2, false},
};

const BlockFormat* FindFormat(GgmlType type) {
  for (const BlockFormat& f : kFormats) {
    if (f.type == type) return &f;
  }
  return nullptr;
}

// Every 32-input block of a row lies inside one group.
bool BlocksInsideGroups(const QuantizedTensor& q) {
  if (q.cols % kQK != 0) return false;
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.group_index[c] != q.group_index[c - c % kQK]) return false;
  }
  return true;
}

// Normal fp16 scales; integer zeros for the d-only types, and for the min
// types (whose zero may be fractional) m = -d * zero within fp16 range.
bool GridsRepresentable(const QuantizedTensor& q, bool has_min) {
  for (size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i], z = q.zeros[i];
    if (!(s >= 0x1p-14f && s <= 65504.0f) || !std::isfinite(z)) return false;
    if (!has_min && z != std::nearbyint(z)) return false;
    if (has_min && !(std::fabs(qi::RoundToHalf(s) * z) <= 65504.0f)) return false;
  }
  return true;
}

// The stored code q of element (r, c) under `f`.
inline int StoredCode(const QuantizedTensor& q, const BlockFormat& f, int64_t r, int64_t c) {
  const int code = q.codes[r * q.cols + c];
  if (f.has_min) return code;
  const float zero = q.zeros[r * q.groups + q.group_index[c]];
  return code - static_cast<int>(zero) + f.offset;
}

bool CodesInRange(const QuantizedTensor& q, const BlockFormat& f) {
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t c = 0; c < q.cols; ++c) {
      const int v = StoredCode(q, f, r, c);
      if (v < 0 || v > f.max_q) return false;
    }
  }
  return true;
}

// Writes block (r, b) of q as `f` at y.
void EncodeBlock(const QuantizedTensor& q, const BlockFormat& f, int64_t r, int64_t b, uint8_t* y) {
  const int64_t c0 = b * kQK;
  const int64_t g = r * q.groups + q.group_index[c0];
  const uint16_t d = qi::Half(q.scales[g]);
  qi::StoreU16(y, d);
  if (f.has_min) qi::StoreU16(y + 2, qi::Half(-HalfToFloatRef(d) * q.zeros[g]));
  int codes[kQK];
  for (int j = 0; j < kQK; ++j) codes[j] = StoredCode(q, f, r, c0 + j);
  if (f.type == GgmlType::kQ8_0) {
    for (int j = 0; j < kQK; ++j) {
      y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(codes[j] - f.offset));
    }
    return;
  }
  if (f.high_bits) qi::StoreU32(y + f.header - 4, qi::HighBits(codes));
  qi::PackNibbles(codes, y + f.header);
}

}  // namespace

absl::Status ValidateQuantizedTensor(const QuantizedTensor& q, absl::string_view tensor) {
  const uint64_t n = static_cast<uint64_t>(q.rows) * static_cast<uint64_t>(q.cols);
  const uint64_t ng = static_cast<uint64_t>(q.rows) * static_cast<uint64_t>(q.groups);
  if (q.rows < 0 || q.cols < 0 || q.groups <= 0 || q.codes.size() != n || q.scales.size() != ng ||
      q.zeros.size() != ng || q.group_index.size() != static_cast<uint64_t>(q.cols)) {
    return absl::InvalidArgumentError(absl::StrCat(
        tensor, ": quantized tensor arrays do not match its shape [", q.rows, ", ", q.cols,
        "] with ", q.groups, " groups per row (codes ", q.codes.size(), ", scales ",
        q.scales.size(), ", zeros ", q.zeros.size(), ", group_index ", q.group_index.size(), ")"));
  }
  for (int64_t c = 0; c < q.cols; ++c) {
    if (q.group_index[c] < 0 || q.group_index[c] >= q.groups) {
      return absl::InvalidArgumentError(absl::StrCat(
          tensor, ": group_index[", c, "] = ", q.group_index[c], " outside [0, ", q.groups, ")"));
    }
  }
  return absl::OkStatus();
}

bool GridFitsType(const QuantizedTensor& q, GgmlType type) {
  if (gi::IsKQuant(type)) return gi::KQuantFits(q, type);
  const BlockFormat* f = FindFormat(type);
  return f != nullptr && q.rows > 0 && BlocksInsideGroups(q) && GridsRepresentable(q, f->has_min) &&
         CodesInRange(q, *f);
}

std::optional<GgmlType> ExactGridType(const QuantizedTensor& q) {
  for (GgmlType type :
       {GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ4_1,
        GgmlType::kQ5_0, GgmlType::kQ5_K, GgmlType::kQ5_1, GgmlType::kQ6_K, GgmlType::kQ8_0}) {
    if (GridFitsType(q, type)) return type;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> EncodeGridExact(const QuantizedTensor& q, GgmlType type,
                                            absl::string_view tensor) {
  if (absl::Status s = ValidateQuantizedTensor(q, tensor); !s.ok()) return s;
  if (!GridFitsType(q, type)) {
    return absl::NotFoundError(
        absl::StrCat(tensor, ": its ", q.grid.bits, "-bit ",
                     q.grid.symmetric ? "symmetric" : "asymmetric", " grid (group size ",
                     q.grid.group_size, ") has no exact encoding as ", engine::GgmlTypeName(type)));
  }
  const engine::GgmlTypeTraits traits = *engine::GgmlTraits(static_cast<uint32_t>(type));
  const uint64_t block_bytes = static_cast<uint64_t>(traits.type_size);
  const int64_t blocks = q.cols / traits.block_size;
  std::string out(static_cast<size_t>(q.rows * blocks * block_bytes), '\0');
  uint8_t* y = reinterpret_cast<uint8_t*>(out.data());
  if (gi::IsKQuant(type)) {
    for (int64_t r = 0; r < q.rows; ++r, y += blocks * block_bytes) {
      gi::EncodeKQuantRow(q, type, r, y);
    }
    return out;
  }
  const BlockFormat& f = *FindFormat(type);
  for (int64_t r = 0; r < q.rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b, y += block_bytes) EncodeBlock(q, f, r, b, y);
  }
  return out;
}

}  // namespace compressd::engine
