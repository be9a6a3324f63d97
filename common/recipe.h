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

// Fills defaults: targets.include ".*_proj$", output.format "hf_safetensors".
void ApplyRecipeDefaults(v1::Recipe* recipe);

// INVALID_ARGUMENT naming the field, e.g. "stages[0].magnitude.sparsity: must
// be in (0, 1), got 1.5", for: an empty stage list, a stage with no kind,
// out-of-range values, a malformed N:M pattern, both or neither of sparsity
// and pattern, an invalid regex, an unknown output format.
absl::Status ValidateRecipe(const v1::Recipe& recipe);

}  // namespace compressd
