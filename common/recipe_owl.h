// OWL's part of a recipe (recipe.proto OwlSpec on a wanda or sparsegpt
// stage): its defaults and validation. The allocation itself is computed by
// the worker (workers/engine/calib/owl.h).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// The paper's defaults (Yin et al. 2024, its LLaMA runs: lambda 0.08, M 5).
inline constexpr double kDefaultOwlLambda = 0.08;
inline constexpr double kDefaultOwlM = 5.0;

// lambda 0.08 and m 5 where unset (0).
void OwlDefaults(v1::OwlSpec* owl);

// INVALID_ARGUMENT naming `path` ("stages[0].wanda.owl") when the stage uses
// a pattern, when sparsity +- 2 lambda leaves (0, 1) (block sparsities span
// a window of 2 lambda containing it), or m is not positive.
absl::Status ValidateOwl(const v1::OwlSpec& owl, double sparsity, const std::string& pattern,
                         const std::string& path);

// The OWL allocation of a wanda or sparsegpt stage; null when it has none.
const v1::OwlSpec* StageOwl(const v1::Stage& stage);

// The sparsity S that OWL allocates around: the wanda or sparsegpt stage's own.
double OwlTargetSparsity(const v1::Stage& stage);

// A wanda or sparsegpt stage as it runs on one block once OWL has allocated:
// its sparsity replaced by the block's, and no owl left.
void ResolveOwl(v1::Stage* stage, double sparsity);

}  // namespace compressd
