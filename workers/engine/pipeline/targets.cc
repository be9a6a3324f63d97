#include "workers/engine/pipeline/targets.h"

#include "absl/strings/str_cat.h"
#include "common/module_pattern.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/model/llama_names.h"

namespace compressd::engine {

absl::Status CheckPatternsFit(const RecipeSpec& spec, const std::string& name, int64_t cols) {
  for (size_t i = 0; i < spec.patterns.size(); ++i) {
    const NMPattern& p = spec.patterns[i];
    if (!p.set() || cols % p.m == 0) continue;
    return absl::InvalidArgumentError(
        absl::StrCat("stages[", i, "]: tensor \"", name, "\" has input dimension ", cols,
                     ", not a multiple of M=", p.m, " for N:M pattern \"", p.n, ":", p.m, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ModelTarget>> SelectModelTargets(engine::LlamaModel& model,
                                                            const RecipeSpec& spec) {
  return SelectTargets(engine::NamedShapes(&model), spec);
}

absl::StatusOr<std::vector<ModelTarget>> SelectTargets(const std::vector<NamedShape>& tensors,
                                                       const RecipeSpec& spec) {
  ASSIGN_OR_RETURN(TargetMatcher matcher, TargetMatcher::Create(spec.recipe.targets()));
  std::vector<ModelTarget> targets;
  for (const engine::NamedShape& t : tensors) {
    ASSIGN_OR_RETURN(bool is_target, matcher.IsTarget(t.name, t.shape));
    if (!is_target) continue;
    RETURN_IF_ERROR(CheckPatternsFit(spec, t.name, t.shape.size() < 2 ? 1 : t.shape[1]));
    targets.push_back({t.name, *TargetMatcher::ModuleName(t.name)});
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("targets.include: \"", spec.recipe.targets().include(),
                     "\" (minus ignore) matches no 2-D weight of the model"));
  }
  RETURN_IF_ERROR(CheckOverridesMatch(spec.recipe, targets));
  return targets;
}

absl::Status CheckOverridesMatch(const v1::Recipe& recipe,
                                 const std::vector<ModelTarget>& targets) {
  for (int i = 0; i < recipe.overrides_size(); ++i) {
    const std::string field = absl::StrCat("overrides[", i, "].modules");
    ASSIGN_OR_RETURN(ModulePattern re, ModulePattern::Compile(recipe.overrides(i).modules(), field));
    bool matched = false;
    for (const ModelTarget& t : targets) matched = matched || re.FullMatch(t.module);
    if (matched) continue;
    // Phi-3 stores q/k/v and gate/up fused, but they are compressed as their parts.
    const bool fused = re.FullMatch("model.layers.0.self_attn.qkv_proj") ||
                       re.FullMatch("model.layers.0.mlp.gate_up_proj");
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": \"", re.pattern(), "\" matches none of the ", targets.size(),
        " targeted modules (named like \"", targets.front().module, "\"), so it would change nothing",
        fused ? "; a fused qkv_proj or gate_up_proj is compressed as its parts (q_proj, k_proj, "
                "v_proj, gate_proj, up_proj): name those"
              : ""));
  }
  return absl::OkStatus();
}

}  // namespace compressd::engine
