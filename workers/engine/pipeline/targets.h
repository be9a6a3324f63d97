// The compression targets of a LlamaModel: its 2-D weights whose HF module
// names (llama_names.h, e.g. "model.layers.3.mlp.up_proj") the recipe's
// TargetMatcher selects. Compression itself is calib/calibrated_compress.h;
// it replaces each target with a new owned tensor, so a shallow copy of the
// model taken before keeps the dense weights.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

struct ModelTarget {
  std::string tensor;  // HF name, "<module>.weight"
  std::string module;
};

// The targets in model order, checked up front: INVALID_ARGUMENT naming the
// tensor when its input dimension is not a multiple of an N:M stage's M,
// naming targets.include when nothing matches, or naming an override that
// matches no target.
absl::StatusOr<std::vector<ModelTarget>> SelectModelTargets(engine::LlamaModel& model,
                                                            const RecipeSpec& recipe);
// The same from the tensors' names and shapes alone (ConfigShapes: before
// any weight is loaded).
absl::StatusOr<std::vector<ModelTarget>> SelectTargets(const std::vector<NamedShape>& tensors,
                                                       const RecipeSpec& recipe);

// INVALID_ARGUMENT naming the override when one matches none of `targets`'
// modules (it would silently change nothing); SelectTargets applies it.
absl::Status CheckOverridesMatch(const v1::Recipe& recipe, const std::vector<ModelTarget>& targets);

// INVALID_ARGUMENT naming the stage and tensor when an N:M stage's M does not
// divide the tensor's input dimension `cols`.
absl::Status CheckPatternsFit(const RecipeSpec& recipe, const std::string& name, int64_t cols);

}  // namespace compressd::engine
