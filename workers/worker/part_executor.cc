#include "workers/worker/part_executor.h"

#include <cstdio>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/recipe_spec.h"
#include "common/status_macros.h"
#include "workers/engine/runtime/fanout.h"

namespace compressd {
namespace {

// A part's events: log lines go to stderr, the rest is dropped (the job's
// own task reports the job's progress).
class PartLogSink : public engine::EventSink {
 public:
  explicit PartLogSink(std::string part) : part_(std::move(part)) {}
  void Emit(const v1::JobEvent& e) override {
    if (e.has_log()) {
      std::fprintf(stderr, "compress-worker: part %s: %s\n", part_.c_str(),
                   e.log().message().c_str());
    }
  }

 private:
  const std::string part_;
};

}  // namespace

PartExecutor::PartExecutor(const WorkerOptions& options, WorkerClient& client, InputFetcher& inputs,
                           const TaskReporter& reporter, ShutdownSignal& shutdown)
    : options_(options),
      client_(client),
      inputs_(inputs),
      reporter_(reporter),
      shutdown_(shutdown) {}

void PartExecutor::Release() {
  runner_.reset();
  runner_key_.clear();
}

TaskOutcome PartExecutor::Run(const v1::Task& task, const Registration& registration) {
  const std::string& name = task.part().name();
  std::fprintf(stderr, "compress-worker: part %s of job %s (%s)\n", name.c_str(),
               task.job_id().c_str(), task.task_id().c_str());
  LeaseScope scope(client_, reporter_, task, registration, options_.cache_dir, shutdown_);
  scope.Start([] { return v1::Progress(); });
  PartLogSink events(name);
  const absl::StatusOr<std::string> result = Execute(task, scope, events);
  if (scope.stopped()) {
    std::fprintf(stderr, "compress-worker: part %s stopped: %s\n", name.c_str(),
                 scope.EndStopped().c_str());
    return TaskOutcome::kStopped;
  }
  if (result.ok()) {
    const absl::Status reported = reporter_.Complete(task, /*summary_json=*/"");
    std::fprintf(stderr, "compress-worker: part %s completed%s\n", name.c_str(),
                 ReportingNote(reported).c_str());
    return TaskOutcome::kCompleted;
  }
  std::fprintf(stderr, "compress-worker: part %s failed: %s\n", name.c_str(),
               result.status().ToString().c_str());
  (void)reporter_.Fail(task, result.status());
  Release();  // rebuilt for the next part
  return TaskOutcome::kFailed;
}

absl::StatusOr<std::string> PartExecutor::Execute(const v1::Task& task, LeaseScope& scope,
                                                  engine::EventSink& events) {
  ASSIGN_OR_RETURN(const std::string task_dir, scope.dir());
  RETURN_IF_ERROR(PrepareRunner(task, task_dir, events, scope.cancel()));
  const engine::WorkPart part{task.part().name(), task.part().payload()};
  absl::StatusOr<std::string> result;
  try {
    result = runner_->Run(part, &scope.levels_db(), events, scope.cancel());
  } catch (const std::exception& e) {
    result = absl::InternalError(absl::StrCat("part ", part.name, ": ", e.what()));
  }
  RETURN_IF_ERROR(result.status());
  RETURN_IF_ERROR(scope.checkpoints().Put(task.part().result(), *result));
  return result;
}

absl::Status PartExecutor::PrepareRunner(const v1::Task& task, const std::string& task_dir,
                                         engine::EventSink& events,
                                         const engine::CancelToken& cancel) {
  const std::string key = absl::StrCat(task.job_id(), "#", task.attempt());
  if (runner_ != nullptr && runner_key_ == key) return absl::OkStatus();
  Release();
  // The server validated the recipe and applied its defaults (SubmitJob).
  ASSIGN_OR_RETURN(const RecipeSpec recipe, CompileRecipe(task.recipe()));
  ASSIGN_OR_RETURN(const TaskInputs inputs, inputs_.Fetch(task, task_dir, events, cancel));
  const engine::RunOptions run = LeasedRunOptions(options_, inputs.datasets);
  ASSIGN_OR_RETURN(runner_,
                   engine::CreatePartRunner(inputs.model_dir, recipe, run, events, cancel));
  runner_key_ = key;
  return absl::OkStatus();
}

}  // namespace compressd
