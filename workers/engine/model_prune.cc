#include "workers/engine/model_prune.h"


#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/model/llama_names.h"

namespace compressd {
namespace {

absl::Status CheckPatterns(const v1::Recipe& recipe, const std::string& name, int64_t cols) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const v1::Stage& stage = recipe.stages(i);
    const std::string& pattern = stage.has_magnitude() ? stage.magnitude().pattern()
                                 : stage.has_wanda()   ? stage.wanda().pattern()
                                                       : stage.sparsegpt().pattern();
    if (pattern.empty()) continue;
    int n = 0, m = 0;
    RETURN_IF_ERROR(ParseNMPattern(pattern, &n, &m));
    if (cols % m != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "stages[", i, "]: tensor \"", name, "\" has input dimension ", cols,
          ", not a multiple of M=", m, " for N:M pattern \"", pattern, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<ModelTarget>> SelectModelTargets(engine::LlamaModel& model,
                                                            const v1::Recipe& recipe) {
  ASSIGN_OR_RETURN(TargetMatcher matcher, TargetMatcher::Create(recipe.targets()));
  std::vector<ModelTarget> targets;
  for (const engine::NamedTensor& t : engine::NamedTensors(&model)) {
    ASSIGN_OR_RETURN(bool is_target, matcher.IsTarget(t.name, t.tensor->shape));
    if (!is_target) continue;
    RETURN_IF_ERROR(CheckPatterns(recipe, t.name, t.tensor->cols()));
    targets.push_back({t.name, *TargetMatcher::ModuleName(t.name)});
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("targets.include: \"",
                                                   recipe.targets().include(),
                                                   "\" (minus ignore) matches no 2-D weight of the model"));
  }
  return targets;
}

}  // namespace compressd
