// Recipes: parsing user-written YAML/JSON into v1::Recipe, defaults, and
// validation. Shared by the client (parse before sending), the server
// (validate on SubmitJob) and the worker (local `run`).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"

namespace compressd {

// Parses YAML (a superset of JSON, so JSON text works too) into a Recipe
// via protobuf's JSON mapping. Unknown fields are INVALID_ARGUMENT naming
// the field; syntax errors name the line and column.
absl::StatusOr<v1::Recipe> ParseRecipeText(std::string_view text);
absl::StatusOr<v1::Recipe> ParseRecipeFile(const std::string& path);

// The recipe as YAML that ParseRecipeText reads back to the same message
// (snake_case field names, block style; fields at their defaults omitted).
std::string RecipeToYaml(const v1::Recipe& recipe);

// Fills defaults: targets.include ".*(_proj|\.w[123])$", output.format "hf_safetensors",
// the stages' and calibration's (recipe_stages.h),
// and per evaluation.perplexity set window 512, windows 64, name = the base
// name of its path or file.
void ApplyRecipeDefaults(v1::Recipe* recipe);

// True for a recipe with no stages and at least one evaluation set: the job
// evaluates the model and writes no model.
bool IsEvaluateOnly(const v1::Recipe& recipe);

// INVALID_ARGUMENT naming the field, e.g. "stages[0].magnitude.sparsity: must
// be in (0, 1), got 1.5", for: no stages and no evaluation set, a stage with
// no kind, out-of-range values, a malformed N:M pattern, both or neither of
// sparsity and pattern, an invalid regex, an unknown output format; for
// evaluation sets: neither or both of path and dataset_id + file, an unsafe
// file path, window outside [2, 131072], windows outside [1, 2^20], duplicate
// names, kl without a set, threads outside [0, 1024].
absl::Status ValidateRecipe(const v1::Recipe& recipe);

}  // namespace compressd
