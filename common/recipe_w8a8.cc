#include "common/recipe_w8a8.h"

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"
#include "common/recipe_grid.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

const v1::QuantGridSpec& StageGridOf(const v1::Stage& stage) {
  return stage.has_gptq() ? stage.gptq().grid() : stage.rtn().grid();
}

std::string StagePath(int index, const v1::Stage& stage) {
  return absl::StrCat("stages[", index, "].", stage.has_gptq() ? "gptq" : "rtn");
}

// W8A8's weights: int8 (or fp8), one scale per output channel, symmetric.
absl::Status CheckW8A8Grid(const v1::QuantGridSpec& grid, const std::string& path) {
  if (GridIsFp8(grid)) return absl::OkStatus();  // ValidateGrid: per channel, symmetric
  if (grid.bits() == 8 && grid.group_size() == -1 && !grid.asymmetric() && grid.scale_bits() == 0) {
    return absl::OkStatus();
  }
  return FieldError(path, absl::StrCat("activations (W8A8) need int8 weights per channel: "
                                       "{bits: 8, group_size: -1} symmetric without scale_bits "
                                       "(what vLLM's W8A8 kernels run), got bits ",
                                       grid.bits(), ", group_size ", grid.group_size(),
                                       grid.asymmetric() ? ", asymmetric" : ""));
}

absl::Status CheckSmoothQuant(const v1::Stage& stage, const std::string& path) {
  const v1::SmoothQuantSpec* sq = StageSmoothQuant(stage);
  if (sq == nullptr) return absl::OkStatus();
  if (StageActivations(stage) == nullptr) {
    return FieldError(path + ".smoothquant",
                      "SmoothQuant moves activation outliers into the weights for activation "
                      "quantization: set activations: {bits: 8} on the same stage");
  }
  if ((stage.has_gptq() && stage.gptq().has_awq()) || (stage.has_rtn() && stage.rtn().has_awq())) {
    return FieldError(path + ".smoothquant",
                      "awq and smoothquant both rescale the linears' inputs: choose one");
  }
  if (!(sq->alpha() >= 0.0 && sq->alpha() <= 1.0)) {
    return FieldError(path + ".smoothquant.alpha",
                      absl::StrCat("must be in [0, 1], got ", sq->alpha()));
  }
  return absl::OkStatus();
}

}  // namespace

void ActivationDefaults(v1::Stage* stage) {
  v1::ActivationQuantSpec* act = nullptr;
  const v1::QuantGridSpec* grid = nullptr;
  if (stage->has_gptq() && stage->gptq().has_activations()) {
    act = stage->mutable_gptq()->mutable_activations();
    grid = &stage->gptq().grid();
  } else if (stage->has_rtn() && stage->rtn().has_activations()) {
    act = stage->mutable_rtn()->mutable_activations();
    grid = &stage->rtn().grid();
  }
  if (act != nullptr && act->type().empty()) act->set_type(GridIsFp8(*grid) ? "fp8" : "int");
}

void SmoothQuantDefaults(v1::SmoothQuantSpec* smoothquant) {
  if (!smoothquant->has_alpha()) smoothquant->set_alpha(kDefaultSmoothQuantAlpha);
  if (!smoothquant->has_down_proj()) smoothquant->set_down_proj(false);
}

const v1::ActivationQuantSpec* StageActivations(const v1::Stage& stage) {
  if (stage.has_gptq() && stage.gptq().has_activations()) return &stage.gptq().activations();
  if (stage.has_rtn() && stage.rtn().has_activations()) return &stage.rtn().activations();
  return nullptr;
}

const v1::SmoothQuantSpec* StageSmoothQuant(const v1::Stage& stage) {
  if (stage.has_gptq() && stage.gptq().has_smoothquant()) return &stage.gptq().smoothquant();
  if (stage.has_rtn() && stage.rtn().has_smoothquant()) return &stage.rtn().smoothquant();
  return nullptr;
}

const v1::SmoothQuantSpec* RecipeSmoothQuant(const v1::Recipe& recipe) {
  for (const v1::Stage& stage : recipe.stages()) {
    if (const v1::SmoothQuantSpec* sq = StageSmoothQuant(stage)) return sq;
  }
  return nullptr;
}

bool ActivationsAreFp8(const v1::ActivationQuantSpec& act) { return act.type() == "fp8"; }

int ActivationStage(const v1::Recipe& recipe) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    if (StageActivations(recipe.stages(i)) != nullptr) return i;
  }
  return -1;
}

absl::Status ValidateW8A8(const v1::Recipe& recipe) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::Stage& stage = recipe.stages(i);
    const std::string path = StagePath(i, stage);
    RETURN_IF_ERROR(CheckSmoothQuant(stage, path));
    const v1::ActivationQuantSpec* act = StageActivations(stage);
    if (act == nullptr) continue;
    if (act->bits() != 8) {
      return FieldError(
          path + ".activations.bits",
          absl::StrCat("must be 8 (int8 or fp8 per token, dynamic), got ", act->bits()));
    }
    if (!act->type().empty() && act->type() != "int" && act->type() != "fp8") {
      return FieldError(path + ".activations.type",
                        absl::StrCat("must be int or fp8, got \"", act->type(), "\""));
    }
    const bool fp8 = ActivationsAreFp8(*act);
    if (fp8 != GridIsFp8(StageGridOf(stage))) {
      return FieldError(path + ".activations.type",
                        absl::StrCat(fp8 ? "fp8" : "int", " activations need ", fp8 ? "fp8" : "int",
                                     " weights (vLLM runs int8 x int8 or "
                                     "fp8 x fp8): set ",
                                     path, ".grid.type to ", fp8 ? "fp8" : "int"));
    }
    RETURN_IF_ERROR(CheckW8A8Grid(StageGridOf(stage), path + ".grid"));
    if (recipe.output().format() != "compressed_tensors") {
      return FieldError("output.format",
                        absl::StrCat("activations (W8A8) are recorded only by compressed_tensors "
                                     "output (format int-quantized or float-quantized, "
                                     "what vLLM runs); \"",
                                     recipe.output().format(), "\" would drop them"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateW8A8Override(const v1::Stage& base, const v1::Stage& params,
                                  const v1::Stage& merged, const std::string& path) {
  if (StageActivations(params) != nullptr || StageSmoothQuant(params) != nullptr) {
    return FieldError(path,
                      "activations and smoothquant are set on the stage (the model runs "
                      "with them), not in an override");
  }
  if (StageActivations(base) == nullptr) return absl::OkStatus();
  return CheckW8A8Grid(StageGridOf(merged),
                       path + (merged.has_gptq() ? ".gptq" : ".rtn") + ".grid");
}

}  // namespace compressd
