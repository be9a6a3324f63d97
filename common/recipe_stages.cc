#include "common/recipe_stages.h"

#include <cmath>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/module_pattern.h"
#include "common/recipe_awq.h"
#include "common/recipe_field.h"
#include "common/recipe_grid.h"
#include "common/recipe_owl.h"
#include "common/recipe_spec.h"
#include "common/recipe_spqr.h"
#include "common/recipe_w8a8.h"
#include "common/status_macros.h"
#include "common/util.h"

namespace compressd {
namespace {

constexpr int64_t kMaxBlock = 4096;
constexpr int kMaxSamples = 1 << 16;
constexpr int kMaxSeqLen = 1 << 17;

// Exactly one of sparsity in (0, 1) and a "N:M" pattern.
absl::Status ValidateSparsity(double sparsity, const std::string& pattern,
                              const std::string& path) {
  const bool has_sparsity = sparsity != 0.0;  // NaN counts as set
  const bool has_pattern = !pattern.empty();
  if (has_sparsity && has_pattern) {
    return FieldError(path, "set exactly one of sparsity and pattern, not both");
  }
  if (!has_sparsity && !has_pattern) {
    return FieldError(path,
                      "set exactly one of sparsity (in (0, 1)) and pattern (\"N:M\"); got neither "
                      "(sparsity 0 counts as unset)");
  }
  if (has_sparsity && !(sparsity > 0.0 && sparsity < 1.0)) {
    return FieldError(path + ".sparsity", absl::StrCat("must be in (0, 1), got ", sparsity));
  }
  return ParseNMPattern(pattern, path + ".pattern").status();
}

absl::Status ValidateSolver(int64_t block_size, double percdamp, const std::string& path) {
  if (block_size < 1 || block_size > kMaxBlock) {
    return FieldError(path + ".block_size",
                      absl::StrCat("must be in [1, ", kMaxBlock, "], got ", block_size));
  }
  if (!(percdamp >= 0.0 && percdamp <= 10.0)) {
    return FieldError(path + ".percdamp", absl::StrCat("must be in [0, 10], got ", percdamp));
  }
  return absl::OkStatus();
}

// Sparsity / bits levels: strictly increasing and equally spaced (so that one
// layer up a level and one of the same size down a level keep the budget),
// sparsities in [0, 1), bits integers in [2, 8], the target within them.
absl::Status ValidateEvoPressLevels(const v1::EvoPressStage& e, const std::string& path) {
  if (e.mode() == "drop") return absl::OkStatus();
  const std::string field = path + ".levels";
  if (e.levels_size() < 1) return FieldError(field, "must not be empty");
  for (int i = 0; i < e.levels_size(); ++i) {
    const double v = e.levels(i);
    const bool ok = e.mode() == "bits" ? (v >= 2 && v <= 8 && v == std::floor(v))
                                       : (v >= 0.0 && v < 1.0);
    if (!ok) {
      return FieldError(field, absl::StrCat("entry ", i, " (", v, ") must be ",
                                            e.mode() == "bits" ? "an integer in [2, 8]"
                                                               : "a sparsity in [0, 1)"));
    }
    if (i > 0 && !(v > e.levels(i - 1))) return FieldError(field, "must be strictly increasing");
    if (i > 1 && std::abs((v - e.levels(i - 1)) - (e.levels(1) - e.levels(0))) > 1e-6) {
      return FieldError(field, "must be equally spaced");
    }
  }
  if (e.target() < e.levels(0) - 1e-9 || e.target() > e.levels(e.levels_size() - 1) + 1e-9) {
    return FieldError(path + ".target", absl::StrCat("must be within the levels [", e.levels(0),
                                                     ", ", e.levels(e.levels_size() - 1), "]"));
  }
  return absl::OkStatus();
}

// Default levels: sparsity target - 0.2 .. target + 0.2 in steps of 0.05,
// clipped to [0, 0.9]; bits 2..6.
void EvoPressLevelDefaults(v1::EvoPressStage* e) {
  if (e->levels_size() > 0) return;
  if (e->mode() == "bits") {
    for (int b = 2; b <= 6; ++b) e->add_levels(b);
  } else if (e->mode() == "sparsity") {
    for (int k = -4; k <= 4; ++k) {
      const double v = std::round((e->target() + 0.05 * k) * 1e6) / 1e6;
      if (v >= 0.0 && v <= 0.9) e->add_levels(v);
    }
  }
}

absl::Status ValidateEvoPress(const v1::EvoPressStage& e, const std::string& path) {
  if (e.mode() != "sparsity" && e.mode() != "bits" && e.mode() != "drop") {
    return FieldError(path + ".mode",
                      absl::StrCat("must be sparsity, bits or drop, got \"", e.mode(), "\""));
  }
  if (!(e.target() > 0.0) || !std::isfinite(e.target())) {
    return FieldError(path + ".target", absl::StrCat("must be > 0, got ", e.target()));
  }
  if (e.mode() != "bits" && !(e.target() < 1.0)) {
    return FieldError(path + ".target",
                      absl::StrCat("a ", e.mode(), " target must be in (0, 1), got ", e.target()));
  }
  if (e.generations() < 0 || e.generations() > 100000) {
    return FieldError(path + ".generations", absl::StrCat("must be in [0, 100000], got ",
                                                          e.generations()));
  }
  if (e.offspring() < 0 || e.offspring() > 4096) {
    return FieldError(path + ".offspring",
                      absl::StrCat("must be in [0, 4096], got ", e.offspring()));
  }
  if (e.survivors_size() != e.step_tokens_size()) {
    return FieldError(path + ".survivors",
                      absl::StrCat("needs one entry per step_tokens entry (", e.survivors_size(),
                                   " vs ", e.step_tokens_size(), ")"));
  }
  for (int i = 0; i < e.survivors_size(); ++i) {
    if (e.survivors(i) < 1 || e.step_tokens(i) < 1) {
      return FieldError(path + (e.survivors(i) < 1 ? ".survivors" : ".step_tokens"),
                        absl::StrCat("entries must be >= 1 (entry ", i, ")"));
    }
  }
  if (e.kl_top_k() < 0 || e.max_level_shift() < 0) {
    return FieldError(path + (e.kl_top_k() < 0 ? ".kl_top_k" : ".max_level_shift"),
                      "must be >= 0");
  }
  RETURN_IF_ERROR(ValidateEvoPressLevels(e, path));
  if (e.fitness() != "kl" && e.fitness() != "ppl") {
    return FieldError(path + ".fitness",
                      absl::StrCat("must be kl or ppl, got \"", e.fitness(), "\""));
  }
  if (e.mode() == "bits") RETURN_IF_ERROR(ValidateEvoPressGrid(e.grid(), path + ".grid"));
  if (!e.database().empty() && e.database() != "sequential" && e.database() != "dense_inputs") {
    return FieldError(path + ".database", absl::StrCat("must be sequential or dense_inputs, "
                                                       "got \"", e.database(), "\""));
  }
  if (!e.start().empty() && e.start() != "random" && e.start() != "score") {
    return FieldError(path + ".start",
                      absl::StrCat("must be random or score, got \"", e.start(), "\""));
  }
  if (e.start() == "score" && e.mode() != "drop") {
    return FieldError(path + ".start", "score is a drop-mode start (mode is " + e.mode() + ")");
  }
  return absl::OkStatus();
}

// `base` with an override's fields merged in. GPTQ's static_groups and
// massive_fallback follow act_order unless the override names them, as they do
// in a stage: an override that only turns act_order off must not be refused
// for the defaulted static_groups.
v1::Stage MergeOverride(const v1::Stage& base, const v1::Stage& params) {
  v1::Stage merged = base;
  merged.MergeFrom(params);
  if (params.has_gptq() && params.gptq().has_act_order()) {
    const bool act_order = params.gptq().act_order();
    if (!params.gptq().has_static_groups()) merged.mutable_gptq()->set_static_groups(act_order);
    if (!params.gptq().has_massive_fallback()) {
      merged.mutable_gptq()->set_massive_fallback(act_order);
    }
  }
  return merged;
}

void GridDefaults(v1::QuantGridSpec* grid) {
  Fp8GridDefaults(grid);
  if (grid->group_size() == 0) grid->set_group_size(kDefaultGroupSize);
}

absl::Status ValidateRegexField(const std::string& regex, const std::string& field) {
  return ModulePattern::Compile(regex, field).status();
}

absl::Status ValidateCalibration(const v1::Calibration& c) {
  const bool has_path = !c.path().empty();
  const bool has_dataset = !c.dataset_id().empty() || !c.file().empty();
  if (has_path == has_dataset) {
    return FieldError("calibration",
                      has_path ? "set either path or dataset_id + file, not both"
                               : "the stages need calibration inputs: set path (a local text "
                                 "file or folder) or dataset_id + file (a file or folder of an "
                                 "uploaded dataset, e.g. file: sotu)");
  }
  if (has_dataset && c.dataset_id().empty()) {
    return FieldError("calibration.dataset_id", "required with file");
  }
  if (has_dataset && c.file().empty()) {
    return FieldError("calibration.file", "required with dataset_id");
  }
  if (has_dataset) RETURN_IF_ERROR(ValidateRelativePath(c.file(), "calibration.file"));
  if (c.samples() < 1 || c.samples() > kMaxSamples) {
    return FieldError("calibration.samples",
                      absl::StrCat("must be in [1, ", kMaxSamples, "], got ", c.samples()));
  }
  if (c.seq_len() < 2 || c.seq_len() > kMaxSeqLen) {
    return FieldError("calibration.seq_len",
                      absl::StrCat("must be in [2, ", kMaxSeqLen, "], got ", c.seq_len()));
  }
  if (c.threads() < 0 || c.threads() > kMaxRecipeThreads) {
    return FieldError("calibration.threads",
                      absl::StrCat("must be in [0, ", kMaxRecipeThreads, "], got ", c.threads()));
  }
  if (c.min_expert_tokens() < 0) {
    return FieldError("calibration.min_expert_tokens",
                      absl::StrCat("must be >= 0, got ", c.min_expert_tokens()));
  }
  return absl::OkStatus();
}

absl::Status ValidateOrder(const v1::Recipe& recipe) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    if (recipe.stages(i).has_evopress() && recipe.stages_size() > 1) {
      return FieldError(absl::StrCat("stages[", i, "]"),
                        "an evopress stage must be the only stage of its recipe");
    }
  }
  int quantizer = -1;
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::Stage& stage = recipe.stages(i);
    if (StagePrunes(stage) && quantizer >= 0) {
      return FieldError(absl::StrCat("stages[", i, "]"),
                        absl::StrCat("pruning (", StageKindName(stage),
                                     ") after the quantization of stages[", quantizer,
                                     "] is not supported: prune first, then quantize"));
    }
    if (StageQuantizes(stage)) {
      if (quantizer >= 0) {
        return FieldError(absl::StrCat("stages[", i, "]"),
                          absl::StrCat("stages[", quantizer,
                                       "] already quantizes; at most one stage may quantize"));
      }
      quantizer = i;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateOverrides(const v1::Recipe& recipe) {
  if (recipe.overrides_size() > ModulePattern::kMaxPatternsPerList) {
    return FieldError("overrides", absl::StrCat(recipe.overrides_size(), " overrides; at most ",
                                                ModulePattern::kMaxPatternsPerList));
  }
  for (int i = 0; i < recipe.overrides_size(); ++i) {
    const v1::LayerOverride& o = recipe.overrides(i);
    const std::string path = absl::StrCat("overrides[", i, "]");
    RETURN_IF_ERROR(ValidateRegexField(o.modules(), path + ".modules"));
    if (o.stage() < 0 || o.stage() >= recipe.stages_size()) {
      return FieldError(path + ".stage", absl::StrCat("no stage ", o.stage(), " (the recipe has ",
                                                      recipe.stages_size(), ")"));
    }
    const v1::Stage& base = recipe.stages(o.stage());
    if (!o.has_params()) {
      if (!o.skip()) return FieldError(path, "set params or skip: true");
      continue;
    }
    if (o.params().kind_case() != base.kind_case()) {
      return FieldError(path + ".params",
                        absl::StrCat("must be a ", StageKindName(base), " stage like stages[",
                                     o.stage(), "], got ", StageKindName(o.params())));
    }
    if (StageOwl(o.params()) != nullptr) {
      return FieldError(path + ".params",
                        "owl is set on the stage (it allocates sparsity across blocks), not in "
                        "an override; an override's sparsity replaces OWL's for its modules");
    }
    RETURN_IF_ERROR(ValidateAwqOverride(o.params(), path + ".params"));
    const v1::Stage merged = MergeOverride(base, o.params());
    RETURN_IF_ERROR(ValidateW8A8Override(base, o.params(), merged, path + ".params"));
    RETURN_IF_ERROR(ValidateStage(merged, path + ".params"));
    RETURN_IF_ERROR(ValidateFractionalZeros(recipe, o.stage(), merged, path + ".params"));
    RETURN_IF_ERROR(ValidateGridType(recipe, merged, path + ".params", &base));
    if (StageQuantizes(merged) != StageQuantizes(base)) {
      return FieldError(path + ".params", "must not add or remove the stage's quantization");
    }
  }
  return absl::OkStatus();
}

}  // namespace

void ApplyStageDefaults(v1::Stage* stage) {
  switch (stage->kind_case()) {
    case v1::Stage::kWanda:
      if (stage->wanda().has_owl()) OwlDefaults(stage->mutable_wanda()->mutable_owl());
      break;
    case v1::Stage::kSparsegpt: {
      v1::SparseGptStage* s = stage->mutable_sparsegpt();
      if (s->has_owl()) OwlDefaults(s->mutable_owl());
      if (s->block_size() == 0) s->set_block_size(kDefaultSolverBlock);
      if (s->percdamp() == 0.0) s->set_percdamp(kDefaultPercdamp);
      if (s->has_quantize()) GridDefaults(s->mutable_quantize());
      break;
    }
    case v1::Stage::kGptq: {
      v1::GptqStage* s = stage->mutable_gptq();
      if (s->block_size() == 0) s->set_block_size(kDefaultSolverBlock);
      if (s->percdamp() == 0.0) s->set_percdamp(kDefaultPercdamp);
      if (!s->has_act_order()) s->set_act_order(true);
      if (!s->has_static_groups()) s->set_static_groups(s->act_order());
      if (!s->has_massive_fallback()) s->set_massive_fallback(s->act_order());
      GridDefaults(s->mutable_grid());
      ActivationDefaults(stage);
      if (s->has_awq()) AwqDefaults(s->mutable_awq());
      if (s->has_smoothquant()) SmoothQuantDefaults(s->mutable_smoothquant());
      break;
    }
    case v1::Stage::kSpqr:
      SpqrDefaults(stage->mutable_spqr());
      break;
    case v1::Stage::kRtn:
      GridDefaults(stage->mutable_rtn()->mutable_grid());
      ActivationDefaults(stage);
      if (stage->rtn().has_awq()) AwqDefaults(stage->mutable_rtn()->mutable_awq());
      if (stage->rtn().has_smoothquant()) {
        SmoothQuantDefaults(stage->mutable_rtn()->mutable_smoothquant());
      }
      break;
    case v1::Stage::kEvopress: {
      v1::EvoPressStage* e = stage->mutable_evopress();
      if (!e->has_generations()) e->set_generations(50);
      if (e->offspring() == 0) e->set_offspring(16);
      if (e->survivors().empty() && e->step_tokens().empty()) {
        e->add_survivors(4);
        e->add_survivors(1);
        e->add_step_tokens(2048);
        e->add_step_tokens(8192);
      }
      if (e->fitness().empty()) e->set_fitness("kl");
      if (e->database().empty() && e->mode() != "drop") e->set_database("sequential");
      EvoPressLevelDefaults(e);
      if (e->mode() == "bits") {
        // Each layer's bit width comes from its level; bits here only satisfy
        // the grid validation (group size and symmetry are what the grid sets).
        e->mutable_grid()->set_bits(4);
        GridDefaults(e->mutable_grid());
        if (!e->has_act_order()) e->set_act_order(true);
      }
      break;
    }
    default:
      break;
  }
}

constexpr int kDefaultMinExpertTokens = 32;

void ApplyCalibrationDefaults(v1::Recipe* recipe) {
  for (v1::Stage& stage : *recipe->mutable_stages()) ApplyStageDefaults(&stage);
  if (!NeedsCalibration(*recipe)) return;
  v1::Calibration* c = recipe->mutable_calibration();
  if (c->name().empty()) c->set_name(kDefaultCalibrationName);
  if (c->samples() == 0) c->set_samples(kDefaultCalibrationSamples);
  if (c->seq_len() == 0) c->set_seq_len(kDefaultCalibrationSeqLen);
  if (c->min_expert_tokens() == 0) c->set_min_expert_tokens(kDefaultMinExpertTokens);
}

absl::Status ValidateStage(const v1::Stage& stage, const std::string& path) {
  switch (stage.kind_case()) {
    case v1::Stage::kMagnitude:
      return ValidateSparsity(stage.magnitude().sparsity(), stage.magnitude().pattern(),
                              path + ".magnitude");
    case v1::Stage::kWanda: {
      const v1::WandaStage& s = stage.wanda();
      RETURN_IF_ERROR(ValidateSparsity(s.sparsity(), s.pattern(), path + ".wanda"));
      if (s.has_owl()) return ValidateOwl(s.owl(), s.sparsity(), s.pattern(), path + ".wanda.owl");
      return absl::OkStatus();
    }
    case v1::Stage::kSparsegpt: {
      const v1::SparseGptStage& s = stage.sparsegpt();
      const std::string p = path + ".sparsegpt";
      RETURN_IF_ERROR(ValidateSparsity(s.sparsity(), s.pattern(), p));
      if (s.has_owl()) RETURN_IF_ERROR(ValidateOwl(s.owl(), s.sparsity(), s.pattern(), p + ".owl"));
      RETURN_IF_ERROR(ValidateSolver(s.block_size(), s.percdamp(), p));
      if (s.has_quantize()) RETURN_IF_ERROR(ValidateGrid(s.quantize(), p + ".quantize"));
      return absl::OkStatus();
    }
    case v1::Stage::kGptq: {
      const v1::GptqStage& s = stage.gptq();
      const std::string p = path + ".gptq";
      RETURN_IF_ERROR(ValidateGrid(s.grid(), p + ".grid"));
      RETURN_IF_ERROR(ValidateSolver(s.block_size(), s.percdamp(), p));
      if (s.static_groups() && !s.act_order()) {
        return FieldError(p + ".static_groups", "only meaningful with act_order: true");
      }
      if (s.massive_fallback() && !s.act_order()) {
        return FieldError(p + ".massive_fallback", "only meaningful with act_order: true");
      }
      return absl::OkStatus();
    }
    case v1::Stage::kRtn:
      return ValidateGrid(stage.rtn().grid(), path + ".rtn.grid");
    case v1::Stage::kEvopress:
      return ValidateEvoPress(stage.evopress(), path + ".evopress");
    case v1::Stage::kSpqr:
      return ValidateSpqr(stage.spqr(), path + ".spqr");
    case v1::Stage::KIND_NOT_SET:
      break;
  }
  return FieldError(path,
                    "stage has no kind (expected one of: magnitude, wanda, sparsegpt, gptq, "
                    "rtn, spqr, evopress)");
}

absl::Status ValidateStages(const v1::Recipe& recipe) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const std::string path = absl::StrCat("stages[", i, "]");
    RETURN_IF_ERROR(ValidateStage(recipe.stages(i), path));
    RETURN_IF_ERROR(ValidateFractionalZeros(recipe, i, recipe.stages(i), path));
    RETURN_IF_ERROR(ValidateGridType(recipe, recipe.stages(i), path));
  }
  RETURN_IF_ERROR(ValidateOrder(recipe));
  RETURN_IF_ERROR(ValidateAwq(recipe));
  RETURN_IF_ERROR(ValidateW8A8(recipe));
  RETURN_IF_ERROR(ValidateOverrides(recipe));
  if (NeedsCalibration(recipe)) RETURN_IF_ERROR(ValidateCalibration(recipe.calibration()));
  return ValidateOutput(recipe);  // recipe_spqr.h
}

bool StageNeedsCalibration(const v1::Stage& stage) {
  return stage.has_wanda() || stage.has_sparsegpt() || stage.has_gptq() || stage.has_evopress() ||
         stage.has_spqr() || StageAwq(stage) != nullptr || StageSmoothQuant(stage) != nullptr;
}
bool StagePrunes(const v1::Stage& stage) {
  return stage.has_magnitude() || stage.has_wanda() || stage.has_sparsegpt() ||
         (stage.has_evopress() && stage.evopress().mode() == "sparsity");
}
bool StageQuantizes(const v1::Stage& stage) {
  return stage.has_gptq() || stage.has_rtn() || stage.has_spqr() ||
         (stage.has_sparsegpt() && stage.sparsegpt().has_quantize()) ||
         (stage.has_evopress() && stage.evopress().mode() == "bits");
}

bool NeedsCalibration(const v1::Recipe& recipe) {
  if (recipe.stages().empty()) return false;
  if (recipe.has_calibration()) return true;
  for (const v1::Stage& s : recipe.stages()) {
    if (StageNeedsCalibration(s)) return true;
  }
  return false;
}

const char* StageKindName(const v1::Stage& stage) {
  switch (stage.kind_case()) {
    case v1::Stage::kMagnitude: return "magnitude";
    case v1::Stage::kWanda: return "wanda";
    case v1::Stage::kSparsegpt: return "sparsegpt";
    case v1::Stage::kGptq: return "gptq";
    case v1::Stage::kRtn: return "rtn";
    case v1::Stage::kEvopress: return "evopress";
    case v1::Stage::kSpqr:
      return "spqr";
    case v1::Stage::KIND_NOT_SET: break;
  }
  return "none";
}

absl::StatusOr<v1::Stage> EffectiveStage(const v1::Recipe& recipe, int index,
                                         const std::string& module, bool* skip) {
  *skip = false;
  v1::Stage stage = recipe.stages(index);
  for (int i = 0; i < recipe.overrides_size(); ++i) {
    const v1::LayerOverride& o = recipe.overrides(i);
    if (o.stage() != index) continue;
    ASSIGN_OR_RETURN(ModulePattern re,
                     ModulePattern::Compile(o.modules(), absl::StrCat("overrides[", i, "].modules")));
    if (!re.FullMatch(module)) continue;
    if (o.skip()) *skip = true;
    if (o.has_params()) stage = MergeOverride(stage, o.params());
  }
  ApplyStageDefaults(&stage);
  RETURN_IF_ERROR(ValidateStage(stage, absl::StrCat("stages[", index, "] for ", module)));
  return stage;
}

}  // namespace compressd
