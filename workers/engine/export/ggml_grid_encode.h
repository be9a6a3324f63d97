// Exact GGUF encoding of a compressd quantization grid: the codes of a
// QuantizedTensor (workers/engine/algorithms/quant_grid.h; value =
// scale * (code - zero) per (row, group)) written straight into a ggml
// block type, without re-quantizing.
//
// A block of 32 consecutive inputs of a row takes the grid of its group, so
// every block must lie inside one group: cols a multiple of 32 and
// group_index constant over each block (true for group_size a multiple of 32
// or per-channel grids without act-order permutation; GPTQ's act-order
// without static groups scatters groups and never fits). Per block:
//   Q4_0 / Q5_0 / Q8_0: d = fp16(scale), q = code - zero + 8 / 16 / 0; needs
//       code - zero in [-8, 7] / [-16, 15] / [-128, 127] (symmetric grids of
//       <= 4 / <= 5 / <= 8 bits always; asymmetric ones of <= 7 bits always
//       for Q8_0, else as their codes fall).
//   Q4_1 / Q5_1: d = fp16(scale), m = fp16(-d * zero), q = code; needs codes
//       in [0, 15] / [0, 31] (any grid of <= 4 / <= 5 bits, fractional zero
//       points included).
// Every scale must be a normal fp16 number (2^-14 <= scale <= 65504) so that
// rounding it is a relative change of at most 2^-11.
//
// The k-quants hold a grid whose scales lie on the k-quant lattice
// (QuantGrid::scale_bits, quant_grid.h) with no fp16 rounding of the scales:
// cols a multiple of 256, each sub-block (16 inputs; 32 for Q4_K/Q5_K) inside
// one group, and per 256-input super-block of a row an fp16 d with every
// scale exactly d * sc:
//   Q3_K / Q6_K: code - zero in [-4, 3] / [-32, 31] (symmetric grids of
//       <= 3 / <= 6 bits), sc in [1, 31] / [1, 127];
//   Q2_K / Q4_K / Q5_K (value d * sc * code - dmin * m): codes in [0, 3] /
//       [0, 15] / [0, 31], sc in [1, 15] / [1, 63], and each min scale * zero
//       equal to dmin * m, m in [0, 15] / [0, 63], for one fp16 dmin per
//       super-block, up to 2^-20 of the largest min (an asymmetric lattice's
//       zero is fl(dmin * m / scale)) (ggml_grid_encode_internal.h).
//
// Precision: Q3_K / Q6_K values are scale * (code - zero) bit for bit; Q2_K /
// Q4_K / Q5_K ones up to two float roundings (scale * zero against dmin * m).
// The legacy types' values differ from scale * (code - zero) only by the
// fp16 rounding of the scale (and, for Q4_1/Q5_1, of m): for the d-only types
// |delta| <= 2^-11 * scale * |code - zero| and a zero weight (code == zero)
// stays exactly 0; for Q4_1/Q5_1, |delta| <= 2^-11 * scale * (code + 2 * zero)
// (about), and zero weights become tiny non-zeros.
//
// Cost: O(rows * cols). Stateless and thread-safe.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/gguf/ggml_types.h"

namespace compressd::engine {

// INVALID_ARGUMENT naming `tensor` when q's arrays do not match its
// rows/cols/groups or a group index is out of range.
absl::Status ValidateQuantizedTensor(const engine::QuantizedTensor& q, absl::string_view tensor);

// True when `type` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K or
// Q6_K) holds q exactly (see above). q must be valid.
bool GridFitsType(const engine::QuantizedTensor& q, engine::GgmlType type);

// The smallest type that holds q exactly (tried in the order Q2_K, Q3_K, Q4_0,
// Q4_K, Q4_1, Q5_0, Q5_K, Q5_1, Q6_K, Q8_0), or nullopt when none does. q
// must be valid.
std::optional<engine::GgmlType> ExactGridType(const engine::QuantizedTensor& q);

// q's codes as `type`, rows in q's order (q.rows * GgmlRowBytes(type, q.cols)
// bytes). INVALID_ARGUMENT naming `tensor` for an invalid q; NOT_FOUND naming
// it when !GridFitsType(q, type).
absl::StatusOr<std::string> EncodeGridExact(const engine::QuantizedTensor& q, engine::GgmlType type,
                                            absl::string_view tensor);

}  // namespace compressd::engine
