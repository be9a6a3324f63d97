// Round-to-nearest (RTN) quantization: the baseline GPTQ is measured against
// (Frantar et al., "GPTQ", 2022, Section 5), on the same grid (quant_grid.h)
// so that GPTQ vs RTN compares only the error compensation.
//
// Math: every weight independently gets the nearest grid value of its
// (row, group) grid, the grid computed from the weights themselves; zeros stay
// exactly zero (0 is on every grid), so RTN keeps a sparsity mask.
// Layout: w row-major [out, in], quantized in place (dequantized values).
// Cost: O(out * in), no extra memory beyond the returned codes.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "workers/engine/algorithms/quant_grid.h"

namespace compressd::engine {

// INVALID_ARGUMENT naming `tensor` for a bad grid, an empty shape or a
// non-finite weight. Stateless, thread-safe.
absl::StatusOr<QuantizedTensor> QuantizeRtn(float* w, int64_t rows, int64_t cols,
                                            const QuantGrid& grid, absl::string_view tensor);

}  // namespace compressd::engine
