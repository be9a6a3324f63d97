// Runs one leased job task: fetches the model and the dataset files its
// recipe names into the task directory, runs the job (RunJob) with the
// task's checkpoints, levels database and fan-out on the server, uploads
// the output files and completes the task, or fails it. Events are batched
// to the server (EventReporter) and the latest progress rides on the
// heartbeats. A cancelled job or a lost lease stops the task without
// reporting a result (LeaseScope).
//
// Not thread-safe: the worker's Run() thread runs one task at a time.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "workers/engine/runtime/run_context.h"
#include "workers/worker/event_reporter.h"
#include "workers/worker/lease_scope.h"
#include "workers/worker/server_client.h"
#include "workers/worker/task_inputs.h"
#include "workers/worker/task_reporter.h"
#include "workers/worker/worker_options.h"

namespace compressd {

class TaskRunner {
 public:
  // All must outlive the runner.
  TaskRunner(const WorkerOptions& options, WorkerClient& client, InputFetcher& inputs,
             const TaskReporter& reporter, ShutdownSignal& shutdown);

  // Runs `task` (a job's own task, not a part) to its end.
  TaskOutcome Run(const v1::Task& task, const Registration& registration);

 private:
  // Fetch, run, upload: the job's summary JSON.
  absl::StatusOr<std::string> Execute(const v1::Task& task, LeaseScope& scope,
                                      EventReporter& events);
  // FAILED_PRECONDITION when the server no longer holds the task's lease.
  absl::Status UploadOutputs(const v1::Task& task, const std::string& out_dir,
                             engine::EventSink& events, const engine::CancelToken& cancel);
  // Completes or fails the task on the server and logs the outcome.
  TaskOutcome Finish(const v1::Task& task, const absl::StatusOr<std::string>& result);

  const WorkerOptions& options_;
  WorkerClient& client_;
  InputFetcher& inputs_;
  const TaskReporter& reporter_;
  ShutdownSignal& shutdown_;
};

}  // namespace compressd
