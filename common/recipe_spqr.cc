#include "common/recipe_spqr.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/recipe_field.h"
#include "common/recipe_spec.h"
#include "common/recipe_stages.h"
#include "common/status_macros.h"

namespace compressd {
namespace {

absl::Status InRange(int64_t v, int64_t lo, int64_t hi, const std::string& field) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return FieldError(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v));
}

absl::Status ValidateSpqrOutput(const v1::Recipe& recipe) {
  int spqr = -1, pruner = -1;
  for (int i = 0; i < recipe.stages_size(); ++i) {
    if (recipe.stages(i).has_spqr()) spqr = i;
    if (StagePrunes(recipe.stages(i)) && pruner < 0) pruner = i;
  }
  const std::string& format = recipe.output().format();
  if (format == "spqr" && spqr < 0) {
    return FieldError("output.format", "spqr needs an spqr stage");
  }
  if (spqr < 0) return absl::OkStatus();
  if (pruner >= 0 && pruner < spqr) {
    return FieldError(absl::StrCat("stages[", spqr, "]"),
                      absl::StrCat("spqr after the pruning of stages[", pruner,
                                   "] is not supported: its fractional zero points cannot keep "
                                   "pruned weights at zero"));
  }
  if (!format.empty() && format != "spqr" && format != "hf_safetensors") {
    return FieldError("output.format",
                      absl::StrCat(format,
                                   " cannot store an spqr stage's weights (second-level "
                                   "statistics and outliers): use spqr (exact) or ",
                                   "hf_safetensors (dense)"));
  }
  return absl::OkStatus();
}

}  // namespace

void SpqrDefaults(v1::SpqrStage* s) {
  if (s->bits() == 0) s->set_bits(kDefaultSpqrBits);
  if (s->group_size() == 0) s->set_group_size(kDefaultSpqrGroup);
  if (s->stat_bits() == 0) s->set_stat_bits(kDefaultSpqrBits);
  if (s->stat_group() == 0) s->set_stat_group(kDefaultSpqrGroup);
  if (!s->has_outlier_threshold()) s->set_outlier_threshold(kDefaultSpqrThreshold);
  if (!s->has_outliers()) s->set_outliers(true);
  if (!s->has_act_order()) s->set_act_order(true);
  if (s->block_size() == 0) s->set_block_size(kDefaultSolverBlock);
  if (s->percdamp() == 0.0) s->set_percdamp(kDefaultSpqrPercdamp);
}

absl::Status ValidateSpqr(const v1::SpqrStage& s, const std::string& path) {
  RETURN_IF_ERROR(InRange(s.bits(), 2, 8, path + ".bits"));
  RETURN_IF_ERROR(InRange(s.stat_bits(), 2, 8, path + ".stat_bits"));
  RETURN_IF_ERROR(InRange(s.group_size(), 2, 1024, path + ".group_size"));
  RETURN_IF_ERROR(InRange(s.stat_group(), 2, 1024, path + ".stat_group"));
  RETURN_IF_ERROR(InRange(s.block_size(), 1, 4096, path + ".block_size"));
  if (!(s.percdamp() >= 0.0 && s.percdamp() <= 10.0)) {
    return FieldError(path + ".percdamp", absl::StrCat("must be in [0, 10], got ", s.percdamp()));
  }
  if (!(s.outlier_threshold() > 0.0) || !std::isfinite(s.outlier_threshold())) {
    return FieldError(path + ".outlier_threshold",
                      absl::StrCat("must be a positive number, got ", s.outlier_threshold(),
                                   " (no outliers: outliers: false)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOutput(const v1::Recipe& recipe) {
  const v1::Output& out = recipe.output();
  RETURN_IF_ERROR(ValidateSpqrOutput(recipe));
  if (out.format() == "gptq" || out.format() == "compressed_tensors") {
    bool quantizes = false;
    for (const v1::Stage& s : recipe.stages()) quantizes |= StageQuantizes(s);
    if (!quantizes) {
      return FieldError("output.format", absl::StrCat(out.format(),
                                                      " needs a stage that quantizes (gptq, rtn "
                                                      "or sparsegpt.quantize)"));
    }
  }
  if (out.format() == "compressed_tensors") {
    for (int i = 0; i < recipe.stages_size(); ++i) {
      const v1::Stage& s = recipe.stages(i);
      if (s.has_gptq() && s.gptq().act_order() && !s.gptq().static_groups()) {
        return FieldError(absl::StrCat("stages[", i, "].gptq.static_groups"),
                          "compressed_tensors output needs contiguous groups: act-order only "
                          "with static_groups: true (the default)");
      }
    }
  }
  if (!out.gguf().target_type().empty() && out.gguf().target_type() != "auto" &&
      !GgufTypeId(out.gguf().target_type())) {
    return FieldError("output.gguf.target_type",
                      absl::StrCat("unknown type \"", out.gguf().target_type(), "\" (auto, ",
                                   GgufTypeNames(), ")"));
  }
  if (!out.gguf().other_type().empty() && !GgufTypeId(out.gguf().other_type())) {
    return FieldError(
        "output.gguf.other_type",
        absl::StrCat("unknown type \"", out.gguf().other_type(), "\" (", GgufTypeNames(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace compressd
