// Jobs as the public API sees them: submit (validated, idempotent by
// request_id), get, list, cancel, and reading persisted events for WatchJob.
// A newly queued job is announced to a WorkNotifier (the Scheduler, which
// server/jobs/ never includes). Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/compressd.pb.h"
#include "server/core/event_bus.h"
#include "server/core/scope.h"
#include "server/core/work_notifier.h"
#include "server/metrics/server_metrics.h"
#include "server/store/store.h"

namespace compressd {

class JobService {
 public:
  JobService(Store& store, EventBus& bus, WorkNotifier& work, ServerMetrics& metrics);

  // INVALID_ARGUMENT for a bad recipe (ValidateRecipe, field named) or a
  // missing model_id; NOT_FOUND for an unknown model or dataset. Datasets
  // named by the recipe's evaluation sets join the job's dataset_ids; such a
  // set must name a file of its dataset (INVALID_ARGUMENT otherwise) and may
  // not name a local path (INVALID_ARGUMENT: workers read uploaded data only).
  // The model and datasets must be visible in `scope`; the job belongs to
  // the model's tenant and records `submitted_by` (a key id).
  // RESOURCE_EXHAUSTED naming the quota when the tenant already has
  // max_queued_jobs QUEUED.
  //
  // Every method: an object outside `scope` is NOT_FOUND like a missing one.
  absl::StatusOr<v1::Job> Submit(const v1::SubmitJobRequest& req, const Scope& scope = Scope::All(),
                                 const std::string& submitted_by = "");
  absl::StatusOr<v1::Job> Get(const std::string& job_id, const Scope& scope = Scope::All());
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& req,
                                            const Scope& scope = Scope::All());
  // QUEUED or RUNNING -> CANCELLED; FAILED_PRECONDITION for a terminal job.
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id, const Scope& scope = Scope::All());
  // Cancels the job if it is QUEUED or RUNNING (its worker hears it on the
  // next heartbeat and stops), then deletes it with its events, artifacts,
  // checkpoints and parts (Store::DeleteJob). Watch streams end (after the
  // CANCELLED event, or NOT_FOUND).
  absl::Status Delete(const std::string& job_id, const Scope& scope = Scope::All());
  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                       int64_t after_sequence, int limit);
  // Updates the jobs-by-state and queue-depth gauges from the Store.
  void RefreshMetrics();

 private:
  // Each evaluation set's dataset exists in `tenant` and has its file.
  absl::Status CheckEvaluationFiles(const v1::Recipe& recipe, const std::string& tenant);
  // The dataset, NOT_FOUND unless it is `tenant`'s.
  absl::StatusOr<v1::Dataset> DatasetOf(const std::string& id, const std::string& tenant);
  // The tenant's max_queued_jobs is not reached.
  absl::Status CheckQueuedQuota(const std::string& tenant);

  Store& store_;
  EventBus& bus_;
  WorkNotifier& work_;
  ServerMetrics& metrics_;
};

}  // namespace compressd
