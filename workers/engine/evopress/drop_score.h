// A per-sub-block importance score for drop mode, and the baseline that
// drops by it (the "simple per-block score" EvoPress is compared with).
//
// Block influence (Men et al. 2024, ShortGPT, generalised to halves): for a
// sub-block (a block's attention half or MLP half) with residual-stream input
// h and output h' = h + f(h),
//     BI = mean over tokens t of (1 - cos(h_t, h'_t)),
// measured on the dense model over the calibration windows (every earlier
// sub-block present). A sub-block that barely turns the hidden state scores
// near 0 and is the first to drop. Cost: one dense forward pass over the
// windows, split at every half.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "workers/engine/evopress/search_space.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/nn/backend.h"

namespace compressd::engine::evopress {

// The block influence of every unit of a drop-mode `space` (one per unit, in
// unit order). INVALID_ARGUMENT for a space of another mode or no windows.
absl::StatusOr<std::vector<double>> BlockInfluence(
    const engine::LlamaModel& dense, engine::Backend* backend, const SearchSpace& space,
    const std::vector<std::vector<int32_t>>& windows);

// Drop mode: in each group, the round(target x size) units of lowest score
// dropped (level 1), ties to the lower unit index: the same budget as
// InitialConfig's random start. INVALID_ARGUMENT for a score per unit
// missing or a target outside [0, 1].
absl::StatusOr<Config> ScoreDropConfig(const SearchSpace& space, double target,
                                       const std::vector<double>& scores);

}  // namespace compressd::engine::evopress
