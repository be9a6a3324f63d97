// The quantization grid of a recipe (recipe.proto QuantGridSpec): its
// validation. The grid itself is workers/engine/algorithms/quant_grid.h.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// INVALID_ARGUMENT naming the field under `path` ("stages[0].gptq.grid")
// unless bits is in [2, 8], group_size is -1 or in [1, 2^20], and scale_bits
// is 0 or in [2, 8] on a symmetric grid whose group_size divides 256.
absl::Status ValidateGrid(const v1::QuantGridSpec& grid, const std::string& path);

}  // namespace compressd
