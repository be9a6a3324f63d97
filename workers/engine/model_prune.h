// Magnitude stages applied to a LlamaModel in memory: the targets are the
// model's 2-D weights whose HF module names (llama_names.h, e.g.
// "model.layers.3.mlp.up_proj") the recipe's TargetMatcher selects; each is
// copied to a new owned tensor and pruned with the kernels of
// algorithms/magnitude.h, so a shallow copy of the model taken before keeps
// the dense weights. Not thread-safe (mutates the model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "nlohmann/json.hpp"
#include "workers/engine/model/llama_model.h"
#include "workers/engine/run_context.h"

namespace compressd {

struct ModelTarget {
  std::string tensor;  // HF name, "<module>.weight"
  std::string module;
};

// The targets in model order, checked up front: INVALID_ARGUMENT naming the
// tensor when its input dimension is not a multiple of an N:M stage's M, or
// naming targets.include when nothing matches.
absl::StatusOr<std::vector<ModelTarget>> SelectModelTargets(engine::LlamaModel& model,
                                                            const v1::Recipe& recipe);

struct PruneTotals {
  uint64_t targeted_parameters = 0;
  uint64_t zeros = 0;
  double seconds = 0;
};

// Applies every stage to each target in turn. Events: Progress "prune" i of
// N (message: the module), MetricPoint "sparsity" and "seconds" per module
// (label layer). Appends one summary entry per target to `layers`.
// CANCELLED once `cancel` is set (checked between tensors). A tied lm_head
// follows the embedding when model.embed_tokens is a target.
absl::StatusOr<PruneTotals> PruneModel(engine::LlamaModel& model, const v1::Recipe& recipe,
                                       const std::vector<ModelTarget>& targets,
                                       EventSink& events, const CancelToken& cancel,
                                       nlohmann::json* layers);

}  // namespace compressd
