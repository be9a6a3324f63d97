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
absl::Status ValidateGrid(const v1::QuantGridSpec& grid, const std::string& path);

// INVALID_ARGUMENT naming `path`'s scale_bits field ("stages[1]" +
// ".gptq.grid.scale_bits") when `stage` (recipe.stages(index), or an
// override's params for it) has an asymmetric grid with scale_bits (fractional
// zero points: no exact 0) and prunes, follows a stage that prunes, or the
// output format (gptq, compressed_tensors) needs integer zero points.
absl::Status ValidateFractionalZeros(const v1::Recipe& recipe, int index, const v1::Stage& stage,
                                     const std::string& path);

}  // namespace compressd
