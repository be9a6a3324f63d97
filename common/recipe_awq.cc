#include "common/recipe_awq.h"

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"

namespace compressd {

void AwqDefaults(v1::AwqSpec* awq) {
  if (awq->grid_points() == 0) awq->set_grid_points(kDefaultAwqGridPoints);
  if (!awq->has_duo_scaling()) awq->set_duo_scaling(false);
  if (!awq->has_clip()) awq->set_clip(false);
}

const v1::AwqSpec* StageAwq(const v1::Stage& stage) {
  if (stage.has_gptq() && stage.gptq().has_awq()) return &stage.gptq().awq();
  if (stage.has_rtn() && stage.rtn().has_awq()) return &stage.rtn().awq();
  return nullptr;
}

const v1::AwqSpec* RecipeAwq(const v1::Recipe& recipe, const v1::QuantGridSpec** grid) {
  if (recipe.stages_size() == 0) return nullptr;
  const v1::Stage& first = recipe.stages(0);
  const v1::AwqSpec* awq = StageAwq(first);
  if (awq != nullptr && grid != nullptr) {
    *grid = first.has_gptq() ? &first.gptq().grid() : &first.rtn().grid();
  }
  return awq;
}

absl::Status ValidateAwq(const v1::Recipe& recipe) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::Stage& stage = recipe.stages(i);
    const v1::AwqSpec* awq = StageAwq(stage);
    if (awq == nullptr) continue;
    const std::string path =
        absl::StrCat("stages[", i, "].", stage.has_gptq() ? "gptq" : "rtn", ".awq");
    if (i > 0) {
      return FieldError(path,
                        "AWQ rescales each block before any stage runs: it belongs on the "
                        "recipe's first stage");
    }
    if (awq->grid_points() < 1 || awq->grid_points() > kMaxAwqGridPoints) {
      return FieldError(path + ".grid_points", absl::StrCat("must be in [1, ", kMaxAwqGridPoints,
                                                            "], got ", awq->grid_points()));
    }
    if (stage.has_gptq() && awq->clip()) {
      return FieldError(path + ".clip",
                        "clipping clamps the weights that GPTQ then takes as its target, so GPTQ "
                        "cannot compensate it (measured on SmolLM2, 3-bit: KJV perplexity 79 -> "
                        "203, docs/results.md \"AWQ\"); use it with an rtn stage");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAwqOverride(const v1::Stage& params, const std::string& path) {
  if (StageAwq(params) == nullptr) return absl::OkStatus();
  return FieldError(path,
                    "awq is set on the stage (its scales are shared by every linear of an "
                    "input), not in an override");
}

}  // namespace compressd
