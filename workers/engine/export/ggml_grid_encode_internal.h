// Exact encoding of lattice grids as k-quant super-blocks (Q3_K, Q6_K),
// behind ggml_grid_encode.h. Internal; stateless and thread-safe.
#pragma once

#include <cstdint>

#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/gguf/ggml_types.h"

namespace compressd::engine::ggml_grid_internal {

// True for Q3_K and Q6_K.
bool IsKQuant(engine::GgmlType type);

// True when the k-quant `type` holds q exactly: cols a multiple of 256, each
// 16-input sub-block inside one group, code - zero within the type's range
// ([-4, 3] / [-32, 31]), and in every 256-input super-block of a row an fp16
// d with each sub-block's scale exactly d * sc, sc in [1, 31] / [1, 127]
// (what a grid with scale_bits yields: quant_grid.h). q must be valid.
bool KQuantFits(const engine::QuantizedTensor& q, engine::GgmlType type);

// Row r of q as `type` (cols / 256 super-blocks at y). KQuantFits(q, type).
void EncodeKQuantRow(const engine::QuantizedTensor& q, engine::GgmlType type, int64_t r,
                     uint8_t* y);

}  // namespace compressd::engine::ggml_grid_internal
