// Computes leased parts of other workers' jobs (fan-out, worker.proto Part).
// The engine's PartRunner of a job (its model, calibration set and stage
// session) is built on the first part of a job attempt and kept for that
// attempt's next parts; a part of another attempt, a failed part or a job
// task (Release()) frees it. Each part's result is stored as the job's
// checkpoint task.part().result(), then the part is completed. Events are
// not reported: log lines go to stderr, and the job's own task reports the
// job's progress.
//
// Not thread-safe: the worker's Run() thread runs one part at a time.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/pipeline/job.h"
#include "workers/worker/lease_scope.h"
#include "workers/worker/server_client.h"
#include "workers/worker/task_inputs.h"
#include "workers/worker/task_reporter.h"
#include "workers/worker/worker_options.h"

namespace compressd {

class PartExecutor {
 public:
  // All must outlive the executor.
  PartExecutor(const WorkerOptions& options, WorkerClient& client, InputFetcher& inputs,
               const TaskReporter& reporter, ShutdownSignal& shutdown);

  // Runs the part `task.part()` to its end.
  TaskOutcome Run(const v1::Task& task, const Registration& registration);
  // Frees the kept part runner and its model.
  void Release();

 private:
  // The part's result, stored as the job's checkpoint.
  absl::StatusOr<std::string> Execute(const v1::Task& task, LeaseScope& scope,
                                      engine::EventSink& events);
  // Keeps runner_ for the task's job attempt: builds it (fetching the model
  // and datasets into `task_dir`) unless it is that attempt's already.
  absl::Status PrepareRunner(const v1::Task& task, const std::string& task_dir,
                             engine::EventSink& events, const engine::CancelToken& cancel);

  const WorkerOptions& options_;
  WorkerClient& client_;
  InputFetcher& inputs_;
  const TaskReporter& reporter_;
  ShutdownSignal& shutdown_;
  std::string runner_key_;  // "<job_id>#<attempt>" of runner_
  std::unique_ptr<engine::PartRunner> runner_;
};

}  // namespace compressd
