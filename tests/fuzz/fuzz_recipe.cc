// libFuzzer target: the recipe path every SubmitJob takes on the server
// (common/recipe.h, recipe_spec.h): YAML/JSON text -> ParseRecipeText ->
// PrepareRecipe (defaults, validation, typed compile), then each stage as it
// applies to a few module names (EffectiveLayerStage: override patterns, N:M).
// Bad input must come back as INVALID_ARGUMENT or RESOURCE_EXHAUSTED, never a
// crash, a hang (RE2 patterns are linear) or another code.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"

namespace {

bool Expected(const absl::Status& s) {
  return s.ok() || absl::IsInvalidArgument(s) || absl::IsResourceExhausted(s) ||
         absl::IsNotFound(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (1 << 16)) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<compressd::v1::Recipe> recipe = compressd::ParseRecipeText(text);
  if (!recipe.ok()) {
    if (!Expected(recipe.status())) std::abort();
    return 0;
  }
  absl::StatusOr<compressd::RecipeSpec> spec = compressd::PrepareRecipe(*recipe);
  if (!spec.ok()) {
    if (!Expected(spec.status())) std::abort();
    return 0;
  }
  // A prepared recipe compiles again to the same thing (what a worker does).
  if (!compressd::CompileRecipe(spec->recipe).ok()) std::abort();
  for (int i = 0; i < spec->recipe.stages_size(); ++i) {
    for (const char* module : {"model.layers.0.self_attn.q_proj", "model.layers.7.mlp.down_proj"}) {
      bool skip = false;
      const absl::StatusOr<compressd::LayerStage> stage =
          compressd::EffectiveLayerStage(spec->recipe, i, module, &skip);
      if (!Expected(stage.status())) std::abort();
    }
  }
  return 0;
}
