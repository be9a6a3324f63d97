// The quantization grid of a recipe (recipe.proto QuantGridSpec): its
// validation. The grid itself is workers/engine/algorithms/quant_grid.h.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// INVALID_ARGUMENT naming the field under `path` ("stages[0].gptq.grid")
// unless bits is in [2, 8], group_size is -1 or in [1, 2^20], and scale_bits
// is 0 or in [2, 8] with a group_size that divides 256.
// type must be "" / "int" or "fp8"; an fp8 grid must be bits 8, group_size
// -1, symmetric, without scale_bits.
absl::Status ValidateGrid(const v1::QuantGridSpec& grid, const std::string& path);

// True for an FP8 E4M3 grid (type "fp8").
bool GridIsFp8(const v1::QuantGridSpec& grid);

// An evopress (bits mode) grid: ValidateGrid, and not fp8 (its levels are
// integer bit widths).
absl::Status ValidateEvoPressGrid(const v1::QuantGridSpec& grid, const std::string& path);

// An fp8 grid's defaults: bits 8 and group_size -1 where unset (0).
void Fp8GridDefaults(v1::QuantGridSpec* grid);

// INVALID_ARGUMENT naming `path`'s grid type field when `stage` (or an
// override's merged params, with `base` the stage it overrides) has an fp8
// grid where none can be, with gguf or gptq output (no E4M3 type), or
// changes the base stage's grid type.
absl::Status ValidateGridType(const v1::Recipe& recipe, const v1::Stage& stage,
                              const std::string& path, const v1::Stage* base = nullptr);

// INVALID_ARGUMENT naming `path`'s scale_bits field ("stages[1]" +
// ".gptq.grid.scale_bits") when `stage` (recipe.stages(index), or an
// override's params for it) has an asymmetric grid with scale_bits (fractional
// zero points: no exact 0) and prunes, follows a stage that prunes, or the
// output format (gptq, compressed_tensors) needs integer zero points.
absl::Status ValidateFractionalZeros(const v1::Recipe& recipe, int index, const v1::Stage& stage,
                                     const std::string& path);

}  // namespace compressd
