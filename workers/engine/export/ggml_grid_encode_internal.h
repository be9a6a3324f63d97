// Exact encoding of lattice grids as k-quant super-blocks (Q2_K .. Q6_K),
// behind ggml_grid_encode.h. Internal; stateless and thread-safe.
#pragma once

#include <cstdint>

#include "workers/engine/algorithms/quant_grid.h"
#include "workers/engine/model/gguf/ggml_types.h"

namespace compressd::engine::ggml_grid_internal {

// True for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
bool IsKQuant(engine::GgmlType type);

// True when the k-quant `type` holds q exactly (ggml_grid_encode.h: whole
// super-blocks, sub-blocks inside groups, levels and lattice integers in the
// type's ranges). q must be valid.
bool KQuantFits(const engine::QuantizedTensor& q, engine::GgmlType type);

// Row r of q as `type` (cols / 256 super-blocks at y). KQuantFits(q, type).
void EncodeKQuantRow(const engine::QuantizedTensor& q, engine::GgmlType type, int64_t r,
                     uint8_t* y);

}  // namespace compressd::engine::ggml_grid_internal
