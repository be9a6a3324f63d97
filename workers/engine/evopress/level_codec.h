// The stored form of one linear layer at one compression level (an entry of
// the EvoPress levels database, levels_db.h). Exact: decoding gives back the
// solver's float32 weights bit for bit.
//
// Layout (host byte order, little endian on every supported platform):
//   "EVOLVL01", u8 kind, u8 has_values, u8 bits, u8 symmetric,
//   i64 rows, i64 cols, i64 group_size, i64 groups, then
//   kind 1 (pruned, float32): u64 n_stored; a bitmask of rows * cols bits
//     (bit i of byte j: element 8j + i; set: the element's bit pattern is not
//     +0.0), then the n_stored set elements' float32 values in row-major order;
//   kind 2 (quantized): the codes packed LSB-first at `bits` bits each,
//     scales f32 [rows, groups], zeros f32 [rows, groups], group_index i32
//     [cols], and, only when has_values (the solver's weights differ from
//     QuantizedTensor::DequantizeTo of the codes), the float32 weights.
// Size: pruned at sparsity s: (1 - s) * 4 + 1/8 bytes per weight (0.4 x 4 +
// 0.125 = 1.7 at s = 0.6, vs 4 for plain float32); quantized: bits / 8 per
// weight plus 8 bytes per group row. Cost: O(rows * cols). Stateless.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/llama_model.h"

namespace compressd::engine::evopress {

struct LevelWeight {
  engine::Tensor weight;                             // [rows, cols] float32, owned
  std::optional<engine::QuantizedTensor> quantized;  // bits mode
};

// w: [rows, cols]; q: the codes when w was quantized (w is then normally its
// dequantization), else null.
std::string EncodeLevelWeight(const float* w, int64_t rows, int64_t cols,
                              const engine::QuantizedTensor* q);

// DATA_LOSS naming `name` for bytes that are truncated, not a level entry, or
// not [rows, cols].
absl::StatusOr<LevelWeight> DecodeLevelWeight(std::string_view bytes, const std::string& name,
                                              int64_t rows, int64_t cols);

}  // namespace compressd::engine::evopress
