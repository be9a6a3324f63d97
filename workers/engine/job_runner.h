// Runs a compression recipe on a model directory and writes the result:
// the one entry point shared by the worker process and `compress-worker run`.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "compressd/v1/recipe.pb.h"
#include "workers/engine/model_job.h"
#include "workers/engine/run_context.h"

namespace compressd {

// Runs `recipe` on the model at `model_path` and writes the result to
// `out_dir` (created if needed). The model is an HF safetensors directory, a
// .gguf file, or a directory holding one .gguf file (a GGUF upload as the
// worker lays it out).
//
// Two paths:
//  * HF safetensors in, no evaluation sets: the tensor-by-tensor path. Each
//    targeted tensor is pruned in turn (natural name order within each
//    shard) and the output keeps the config, shard layout and dtypes; every
//    other tensor is byte-identical. Events: Progress "load" 0..1, "prune" i
//    of N targets, "export" i of N shards; MetricPoint "sparsity" and
//    "seconds" per module (label layer=<module name>), log lines. The JSON
//    summary has per-layer sparsity, totals, and wall time split into
//    load / prune / export.
//  * GGUF input, or a recipe with evaluation sets: the model-engine path of
//    model_job.h (whole model in memory, evaluation, F32 HF export).
// `cancel` is checked between tensors and evaluation batches; once set the
// result is CANCELLED.
//
// Errors: INVALID_ARGUMENT for a bad recipe or a malformed model (naming the
// file / tensor / field), NOT_FOUND for a missing model or text file,
// UNIMPLEMENTED for output formats this worker does not write. Never aborts.
absl::StatusOr<std::string> RunRecipe(const std::string& model_path, const v1::Recipe& recipe,
                                      const std::string& out_dir, EventSink& events,
                                      CancelToken& cancel, const RunOptions& options = {});

// The runner of a job's parts (model_job.h ModelPartRunner) for the model at
// `model_path` (resolved as RunRecipe does) and `recipe` (defaults applied
// here). Errors as RunRecipe's.
absl::StatusOr<std::unique_ptr<ModelPartRunner>> CreatePartRunner(const std::string& model_path,
                                                                  const v1::Recipe& recipe,
                                                                  const RunOptions& options,
                                                                  EventSink& events,
                                                                  const CancelToken& cancel);

// Natural order: digit runs compare as numbers, so "layers.2" < "layers.10".
bool NaturalLess(const std::string& a, const std::string& b);

}  // namespace compressd
