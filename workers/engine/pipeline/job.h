// The engine's entry points: a job (RunJob) and a part of a job computed for
// another worker's job (PartRunner). The worker process and
// `compress-worker run` include this header and nothing else of the pipelines.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/recipe_spec.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/fanout.h"
#include "workers/engine/runtime/run_context.h"

namespace compressd::engine {

// Runs `recipe` on the model at `model_path` and writes the result to
// `out_dir` (created if needed); returns the job's summary JSON. The model is
// an HF safetensors directory, a .gguf file, or a directory holding one .gguf
// file (a GGUF upload as the worker lays it out). The job is planned once
// (job_plan.h) and run step by step: load, calibrate, the stages, evaluate,
// export. `cancel` is checked between units of work; once set the result is
// CANCELLED.
//
// Errors: INVALID_ARGUMENT for a recipe that cannot apply to the model or a
// malformed model (naming the file / tensor / field), NOT_FOUND for a missing
// model or text file, RESOURCE_EXHAUSTED when out of memory. Never aborts.
absl::StatusOr<std::string> RunJob(const std::string& model_path, const RecipeSpec& recipe,
                                   const std::string& out_dir, EventSink& events,
                                   CancelToken& cancel, const RunOptions& options = {});

// Computes parts of a job (fanout.h) on this worker for the job's task, which
// may run on another worker. What the parts need (model, calibration set, the
// stage's session) is built once by CreatePartRunner and kept for the job's
// next parts. Only evopress stages fan out. Not thread-safe.
class PartRunner {
 public:
  virtual ~PartRunner() = default;
  // The part's result. `store`: where the levels database lives, the same
  // store as the job's own RunOptions::levels_db.
  virtual absl::StatusOr<std::string> Run(const WorkPart& part, CheckpointStore* store,
                                          EventSink& events, const CancelToken& cancel) = 0;
};

// INVALID_ARGUMENT for a recipe without a stage that fans out; errors as RunJob's.
absl::StatusOr<std::unique_ptr<PartRunner>> CreatePartRunner(const std::string& model_path,
                                                             const RecipeSpec& recipe,
                                                             const RunOptions& options,
                                                             EventSink& events,
                                                             const CancelToken& cancel);

// Runs `fn`, turning a std::bad_alloc into RESOURCE_EXHAUSTED and any other
// exception into INTERNAL, both naming `what`: the engine's no-throw boundary.
absl::Status GuardEngineCall(const std::string& what, const std::function<absl::Status()>& fn);

}  // namespace compressd::engine
