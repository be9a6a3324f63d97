// The compression stages of a recipe (recipe.proto: magnitude, wanda,
// sparsegpt, gptq, rtn), their defaults, validation, per-layer overrides and
// the calibration set. Split from recipe.h, which handles parsing and the
// rest of the recipe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

inline constexpr char kDefaultCalibrationName[] = "calib-sotu";
inline constexpr int kDefaultCalibrationSamples = 128;
inline constexpr int kDefaultCalibrationSeqLen = 512;
inline constexpr int64_t kDefaultGroupSize = 128;
inline constexpr int64_t kDefaultSolverBlock = 128;
inline constexpr double kDefaultPercdamp = 0.01;

// Fills a stage's defaults: group_size 128, block_size 128, percdamp 0.01.
void ApplyStageDefaults(v1::Stage* stage);
// Stage defaults for every stage and override, and calibration name / samples
// / seq_len (calib-sotu, 128 x 512).
void ApplyCalibrationDefaults(v1::Recipe* recipe);

// INVALID_ARGUMENT naming the field (`path`, e.g. "stages[1].gptq.grid.bits")
// for out-of-range values: sparsity outside (0, 1), both or neither of
// sparsity and pattern, a malformed "N:M", bits outside [2, 8], group_size not
// -1 or in [1, 2^20], block_size outside [1, 4096], percdamp outside [0, 10].
absl::Status ValidateStage(const v1::Stage& stage, const std::string& path);

// Stage order and composition: pruning stages (magnitude, wanda, sparsegpt)
// must come before quantization stages (gptq, rtn, sparsegpt with quantize),
// and at most one stage quantizes. Overrides: a valid regex, a stage index in
// range, params of the same kind as that stage (or none, with skip), and the
// merged stage valid. Calibration: when a stage needs it (NeedsCalibration),
// exactly one source (path, or dataset_id + file), samples in [1, 65536],
// seq_len in [2, 131072], threads in [0, 1024]. Output: format gptq needs a
// quantizing stage; gguf types must be known names.
absl::Status ValidateStages(const v1::Recipe& recipe);

bool StageNeedsCalibration(const v1::Stage& stage);  // wanda, sparsegpt, gptq, awq
bool StagePrunes(const v1::Stage& stage);     // magnitude, wanda, sparsegpt, evopress sparsity
bool StageQuantizes(const v1::Stage& stage);  // gptq, rtn, sparsegpt.quantize, evopress bits
// Any stage needs calibration inputs, or a calibration section was given with stages.
bool NeedsCalibration(const v1::Recipe& recipe);

// "magnitude", "wanda", ... for messages.
const char* StageKindName(const v1::Stage& stage);

// The stage `index` as it applies to `module`: the recipe's stage with every
// matching override's params merged in, in order; nullopt-like: *skip is set
// when an override skips it. INVALID_ARGUMENT naming the override when the
// merged stage is invalid.
absl::StatusOr<v1::Stage> EffectiveStage(const v1::Recipe& recipe, int index,
                                         const std::string& module, bool* skip);

}  // namespace compressd
