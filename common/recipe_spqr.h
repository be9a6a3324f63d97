// The SpQR stage of a recipe (recipe.proto SpqrStage) and the output checks
// (which formats can hold what the stages produce): defaults and validation.
// The solver is workers/engine/algorithms/spqr.h.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// The paper's settings (Dettmers et al. 2023, its LLaMA runs): 3-bit codes
// in groups of 16 inputs, 3-bit statistics over 16 outputs, relative outlier
// threshold 0.2, act-order, percdamp 1.0; block 128.
inline constexpr int kDefaultSpqrBits = 3;
inline constexpr int64_t kDefaultSpqrGroup = 16;
inline constexpr double kDefaultSpqrThreshold = 0.2;
inline constexpr double kDefaultSpqrPercdamp = 1.0;

// Fills the unset (0 / absent) fields with the defaults above.
void SpqrDefaults(v1::SpqrStage* spqr);

// INVALID_ARGUMENT naming the field under `path` ("stages[0].spqr"): bits or
// stat_bits outside [2, 8], group_size or stat_group outside [2, 1024],
// block_size outside [1, 4096], percdamp outside [0, 10], a threshold that
// is not a positive finite number.
absl::Status ValidateSpqr(const v1::SpqrStage& spqr, const std::string& path);

// The output against the stages: gptq and compressed_tensors need a stage
// that quantizes; spqr needs an spqr stage, which only the spqr format (exact)
// and hf_safetensors (dense) can hold; an spqr stage after a pruning stage
// (its fractional zero points cannot keep pruned weights at zero); known
// GGUF type names. INVALID_ARGUMENT naming the field.
absl::Status ValidateOutput(const v1::Recipe& recipe);

}  // namespace compressd
