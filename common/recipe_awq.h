// AWQ's part of a recipe (recipe.proto AwqSpec on a gptq or rtn stage): its
// defaults and validation. The search and the folding are the worker's
// (workers/engine/calib/awq.h).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// 20 grid points (AutoAWQ's and llm-compressor's); duo scaling off, the
// paper's s = mean|x|^a: on SmolLM2 it beats their duo-scaling default at 3
// and 4 bits (docs/results.md, "AWQ").
inline constexpr int kDefaultAwqGridPoints = 20;
inline constexpr int kMaxAwqGridPoints = 1000;

// grid_points 20 where unset (0), duo_scaling false where unset.
void AwqDefaults(v1::AwqSpec* awq);

// The AWQ spec of a gptq or rtn stage; null when it has none.
const v1::AwqSpec* StageAwq(const v1::Stage& stage);

// The spec and grid AWQ runs with: the first stage's (the only one that may
// carry it); null when the recipe has no AWQ.
const v1::AwqSpec* RecipeAwq(const v1::Recipe& recipe, const v1::QuantGridSpec** grid);

// INVALID_ARGUMENT naming the field ("stages[1].gptq.awq"): awq on a stage
// other than the first (it rescales each block before any stage runs),
// grid_points outside [1, 1000], or awq inside an override's params (`path`
// names the override).
absl::Status ValidateAwq(const v1::Recipe& recipe);
absl::Status ValidateAwqOverride(const v1::Stage& params, const std::string& path);

}  // namespace compressd
