// W8A8's part of a recipe (recipe.proto ActivationQuantSpec and
// SmoothQuantSpec on a gptq or rtn stage): defaults, lookups and validation.
// The run-time activation quantization is the forward pass's
// (workers/engine/nn/backend.h QuantizeActivations); SmoothQuant's scales are
// the worker's (workers/engine/calib/smoothquant.h).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// SmoothQuant's migration strength: the paper's default and llm-compressor's.
inline constexpr double kDefaultSmoothQuantAlpha = 0.5;

// activations.type where unset: the stage grid's type ("int" or "fp8").
void ActivationDefaults(v1::Stage* stage);

// alpha 0.5 and down_proj false where unset.
void SmoothQuantDefaults(v1::SmoothQuantSpec* smoothquant);

// The activation / SmoothQuant spec of a gptq or rtn stage; null when it has none.
const v1::ActivationQuantSpec* StageActivations(const v1::Stage& stage);
const v1::SmoothQuantSpec* StageSmoothQuant(const v1::Stage& stage);

// The recipe's SmoothQuant spec (on whichever stage carries it); null when none.
const v1::SmoothQuantSpec* RecipeSmoothQuant(const v1::Recipe& recipe);

// Whether `act` quantizes to FP8 E4M3 (type "fp8") rather than int8.
bool ActivationsAreFp8(const v1::ActivationQuantSpec& act);

// The index of the stage with activations, or -1.
int ActivationStage(const v1::Recipe& recipe);

// INVALID_ARGUMENT naming the field ("stages[0].rtn.activations.bits"):
// activations.bits other than 8, a type other than int / fp8 or not the
// grid's; a stage with activations whose grid is not int8 (or fp8) per
// channel symmetric (it is the recipe's last that changes weights:
// ValidateOrder allows nothing after a quantizing stage); output
// other than compressed_tensors (the only format that records activation
// quantization); smoothquant without activations on its stage, with awq on
// it, or alpha outside [0, 1].
absl::Status ValidateW8A8(const v1::Recipe& recipe);

// An override's params may set neither (they are the model's runtime
// setting); the merged grid of a W8A8 stage must stay int8 per channel.
absl::Status ValidateW8A8Override(const v1::Stage& base, const v1::Stage& params,
                                  const v1::Stage& merged, const std::string& path);

}  // namespace compressd
