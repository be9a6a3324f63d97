#include "workers/engine/model_prune.h"

#include <chrono>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "workers/engine/algorithms/magnitude.h"
#include "workers/engine/model/llama_names.h"

namespace compressd {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::Status CheckPatterns(const v1::Recipe& recipe, const std::string& name, int64_t cols) {
  for (int i = 0; i < recipe.stages_size(); ++i) {
    const std::string& pattern = recipe.stages(i).magnitude().pattern();
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

absl::StatusOr<PruneTotals> PruneModel(engine::LlamaModel& model, const v1::Recipe& recipe,
                                       const std::vector<ModelTarget>& targets,
                                       EventSink& events, const CancelToken& cancel,
                                       json* layers) {
  const bool tied = engine::LmHeadIsTied(model);
  std::map<std::string, engine::Tensor*> by_name;
  for (const engine::NamedTensor& t : engine::NamedTensors(&model)) by_name[t.name] = t.tensor;
  PruneTotals totals;
  const int total = static_cast<int>(targets.size());
  for (int i = 0; i < total; ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    const ModelTarget& target = targets[i];
    auto it = by_name.find(target.tensor);
    if (it == by_name.end()) {
      return absl::InternalError(absl::StrCat(target.tensor, ": not a tensor of the model"));
    }
    engine::Tensor& tensor = *it->second;
    const Clock::time_point start = Clock::now();
    std::vector<float> w(tensor.data, tensor.data + tensor.numel());
    for (const v1::Stage& stage : recipe.stages()) {
      if (!stage.has_magnitude()) {
        return absl::InvalidArgumentError("stages: only magnitude stages are supported");
      }
      RETURN_IF_ERROR(
          ApplyMagnitudeStage(stage.magnitude(), w.data(), tensor.rows(), tensor.cols(),
                              target.tensor));
    }
    const size_t zeros = CountZeros(w.data(), w.size());
    const size_t numel = w.size();
    tensor = engine::Tensor::Owned(tensor.shape, std::move(w));
    if (tied && &tensor == &model.embed_tokens) model.lm_head = model.embed_tokens;
    const double seconds = SecondsSince(start);
    const double sparsity = numel ? static_cast<double>(zeros) / numel : 0.0;
    totals.targeted_parameters += numel;
    totals.zeros += zeros;
    totals.seconds += seconds;
    layers->push_back({{"name", target.module},
                       {"tensor", target.tensor},
                       {"dtype", "F32"},
                       {"shape", tensor.shape},
                       {"numel", numel},
                       {"zeros", zeros},
                       {"sparsity", sparsity},
                       {"seconds", seconds}});
    EmitProgress(events, "prune", i + 1, total, target.module);
    EmitMetric(events, "sparsity", sparsity, target.module);
    EmitMetric(events, "seconds", seconds, target.module);
  }
  return totals;
}

}  // namespace compressd
