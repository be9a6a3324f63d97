// The tensor-by-tensor job path (job_plan.h JobPath::kTensorByTensor): HF
// safetensors in, magnitude stages only, HF safetensors out. Each targeted
// tensor is pruned in turn (natural name order within each shard) and the
// output keeps the config, shard layout and dtypes; every other tensor is
// byte-identical. Memory: one tensor at a time.
//
// Events: Progress "load" 0..1, "prune" i of N targets, "export" i of N
// shards; MetricPoint "sparsity" and "seconds" per module (label
// layer=<module name>), log lines. Summary (summary.h): model, layers,
// totals, timing_seconds {load, prune, export, total}.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

absl::StatusOr<std::string> RunTensorJob(const std::string& model_dir, const RecipeSpec& recipe,
                                         const std::string& out_dir, EventSink& events,
                                         CancelToken& cancel);

// Natural order: digit runs compare as numbers, so "layers.2" < "layers.10".
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace compressd::engine
