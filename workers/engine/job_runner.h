// Runs a compression recipe on a model directory and writes the result:
// the one entry point shared by the worker process and `compress-worker run`.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/run_context.h"

namespace compressd {

// Loads the Hugging Face safetensors model in `model_dir`, applies the
// recipe's stages to each targeted tensor in turn (in natural name order
// within each shard), and writes the output model to `out_dir` (created if
// needed): same config, same shard layout, same dtypes.
//
// Events: Progress "load" 0..1, "prune" i of N targets, "export" i of N shards; MetricPoint
// "sparsity" and "seconds" per module (label layer=<module name>), log lines.
// `cancel` is checked between tensors; once set the result is CANCELLED.
//
// Returns a JSON summary: per-layer sparsity, totals, and wall time split into
// load / prune / export. Errors: INVALID_ARGUMENT for a bad recipe or a
// malformed model (naming the file / tensor / field), UNIMPLEMENTED for
// input or output formats this worker does not handle (GGUF). Never aborts.
absl::StatusOr<std::string> RunRecipe(const std::string& model_dir, const v1::Recipe& recipe,
                                      const std::string& out_dir, EventSink& events,
                                      CancelToken& cancel);

// Natural order: digit runs compare as numbers, so "layers.2" < "layers.10".
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace compressd
