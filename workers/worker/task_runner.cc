#include "workers/worker/task_runner.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/recipe_spec.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "workers/engine/pipeline/job.h"
#include "workers/worker/server_fanout.h"
#include "workers/worker/task_files.h"

namespace compressd {
namespace {

namespace fs = std::filesystem;

// Forwards events; after each per-layer progress event of a compression stage
// it pauses for `pause_ms` (in short steps, so cancellation stays prompt).
// The fault injection of WorkerOptions::slow_ms_per_layer.
class SlowSink : public engine::EventSink {
 public:
  SlowSink(engine::EventSink& inner, int64_t pause_ms, const engine::CancelToken& cancel)
      : inner_(inner), pause_ms_(pause_ms), cancel_(cancel) {}
  void Emit(const v1::JobEvent& event) override {
    inner_.Emit(event);
    if (!event.has_progress() || event.progress().stage() != "prune") return;
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(pause_ms_);
    while (!cancel_.cancelled() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

 private:
  engine::EventSink& inner_;
  const int64_t pause_ms_;
  const engine::CancelToken& cancel_;
};

}  // namespace

TaskRunner::TaskRunner(const WorkerOptions& options, WorkerClient& client, InputFetcher& inputs,
                       const TaskReporter& reporter, ShutdownSignal& shutdown)
    : options_(options),
      client_(client),
      inputs_(inputs),
      reporter_(reporter),
      shutdown_(shutdown) {}

TaskOutcome TaskRunner::Run(const v1::Task& task, const Registration& registration) {
  std::fprintf(stderr, "compress-worker: task %s (job %s, attempt %d)\n", task.task_id().c_str(),
               task.job_id().c_str(), task.attempt());
  LeaseScope scope(client_, reporter_, task, registration, options_.cache_dir, shutdown_);
  EventReporter events(
      [this, &task](const std::vector<v1::JobEvent>& batch) {
        v1::ReportEventsRequest req;
        req.set_task_id(task.task_id());
        req.set_lease_token(task.lease_token());
        for (const v1::JobEvent& e : batch) *req.add_events() = e;
        return client_.ReportEvents(req);
      },
      scope.on_lease_lost(), options_.events);
  scope.Start([&events] { return events.LatestProgress(); });

  const absl::StatusOr<std::string> result = Execute(task, scope, events);
  if (!result.ok() && !scope.cancel().cancelled()) {
    engine::EmitLog(events, "error", result.status().ToString());
  }
  events.Stop();  // the events reach the server before the result does
  TaskOutcome outcome = TaskOutcome::kStopped;
  if (scope.stopped()) {
    std::fprintf(stderr, "compress-worker: task %s stopped: %s\n", task.task_id().c_str(),
                 scope.EndStopped().c_str());
  } else {
    outcome = Finish(task, result);
  }
  scope.Close();  // the heartbeats read `events`: they stop first
  return outcome;
}

absl::StatusOr<std::string> TaskRunner::Execute(const v1::Task& task, LeaseScope& scope,
                                                EventReporter& events) {
  ASSIGN_OR_RETURN(const std::string task_dir, scope.dir());
  engine::CancelToken& cancel = scope.cancel();
  // The server validated the recipe and applied its defaults (SubmitJob).
  ASSIGN_OR_RETURN(const RecipeSpec recipe, CompileRecipe(task.recipe()));
  ASSIGN_OR_RETURN(const TaskInputs inputs, inputs_.Fetch(task, task_dir, events, cancel));
  engine::RunOptions run = LeasedRunOptions(options_, inputs.datasets);
  // Checkpoints outlive this attempt on the server; losing the lease while
  // writing one stops the task like a lost lease anywhere else.
  run.checkpoints = &scope.checkpoints();
  run.levels_db = &scope.levels_db();
  ServerFanout fanout(client_, task.task_id(), task.lease_token(), scope.checkpoints(),
                      reporter_.retry(), scope.on_lease_lost());
  run.fanout = &fanout;
  SlowSink slow(events, options_.slow_ms_per_layer, cancel);
  engine::EventSink& sink =
      options_.slow_ms_per_layer > 0 ? static_cast<engine::EventSink&>(slow) : events;
  const std::string out_dir = (fs::path(task_dir) / "out").string();
  ASSIGN_OR_RETURN(std::string summary,
                   engine::RunJob(inputs.model_dir, recipe, out_dir, sink, cancel, run));
  absl::Status uploaded = UploadOutputs(task, out_dir, events, cancel);
  if (uploaded.code() == absl::StatusCode::kFailedPrecondition) scope.LoseLease();
  RETURN_IF_ERROR(uploaded);
  return summary;
}

absl::Status TaskRunner::UploadOutputs(const v1::Task& task, const std::string& out_dir,
                                       engine::EventSink& events,
                                       const engine::CancelToken& cancel) {
  ASSIGN_OR_RETURN(std::vector<std::string> files, ListFilesRecursive(out_dir));
  const int total = static_cast<int>(files.size());
  for (int i = 0; i < total; ++i) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled during upload");
    const std::string path = (fs::path(out_dir) / files[i]).string();
    engine::EmitProgress(events, "upload", i, total, files[i]);
    v1::UploadArtifactHeader header;
    header.set_task_id(task.task_id());
    header.set_lease_token(task.lease_token());
    header.set_path(files[i]);
    std::error_code ec;
    header.set_size(fs::file_size(path, ec));
    if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
    ASSIGN_OR_RETURN(std::string sha, Sha256File(path));
    header.set_sha256(sha);
    RETURN_IF_ERROR(
        reporter_.WithRetry([&] { return client_.UploadArtifact(header, path).status(); }));
  }
  engine::EmitProgress(events, "upload", total, total, "");
  engine::EmitLog(events, "info", absl::StrCat("uploaded ", files.size(), " output files"));
  return absl::OkStatus();
}

TaskOutcome TaskRunner::Finish(const v1::Task& task, const absl::StatusOr<std::string>& result) {
  const absl::Status reported =
      result.ok() ? reporter_.Complete(task, *result) : reporter_.Fail(task, result.status());
  std::fprintf(
      stderr, "compress-worker: task %s %s%s%s\n", task.task_id().c_str(),
      result.ok() ? "completed" : "failed: ", result.ok() ? "" : result.status().ToString().c_str(),
      ReportingNote(reported).c_str());
  return result.ok() ? TaskOutcome::kCompleted : TaskOutcome::kFailed;
}

}  // namespace compressd
