#include "server/jobs/job_service.h"

#include <algorithm>
#include <optional>
#include <string>
#include <vector>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/dataset_files.h"
#include "common/recipe.h"
#include "common/recipe_spec.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/core/job_state.h"

namespace compressd {
namespace {

constexpr int kDefaultMaxAttempts = 3;
constexpr int kMaxMaxAttempts = 100;
// A recipe is a few kilobytes; the bound keeps jobs listable and every worker
// able to receive its task (gRPC's default 4 MiB message limit).
constexpr size_t kMaxRecipeBytes = 256 * 1024;

// Checks everything about a new job that does not need the Store.
absl::Status ValidateSubmit(const v1::SubmitJobRequest& req, v1::Recipe* recipe) {
  if (req.model_id().empty()) return absl::InvalidArgumentError("model_id: required");
  if (req.max_attempts() != 0 &&
      (req.max_attempts() < 1 || req.max_attempts() > kMaxMaxAttempts)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_attempts: must be in [1, ", kMaxMaxAttempts, "], got ", req.max_attempts()));
  }
  for (int i = 0; i < req.dataset_ids_size(); ++i) {
    if (req.dataset_ids(i).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("dataset_ids[", i, "]: empty id"));
    }
  }
  if (req.recipe().ByteSizeLong() > kMaxRecipeBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("recipe: ", req.recipe().ByteSizeLong(),
                                                     " bytes; at most ", kMaxRecipeBytes));
  }
  // The one place a submitted recipe gets its defaults and is validated
  // (common/recipe_spec.h); workers receive it as stored here.
  absl::StatusOr<RecipeSpec> spec = PrepareRecipe(req.recipe());
  if (!spec.ok()) {
    return absl::Status(spec.status().code(), absl::StrCat("recipe: ", spec.status().message()));
  }
  *recipe = std::move(spec->recipe);
  return absl::OkStatus();
}

// Evaluation sets of a service job name uploaded datasets, never files on a
// worker; each named dataset joins the job's datasets (the worker gets them).
absl::Status AddEvaluationDatasets(v1::Job* job) {
  const auto& sets = job->recipe().evaluation().perplexity();
  for (int i = 0; i < sets.size(); ++i) {
    const std::string field = absl::StrCat("recipe: evaluation.perplexity[", i, "]");
    if (!sets[i].path().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".path: a job run by the service reads uploaded datasets, not local files; "
          "upload the text (compressctl datasets upload) and set dataset_id + file"));
    }
    const std::string& id = sets[i].dataset_id();
    const auto& ids = job->dataset_ids();
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) job->add_dataset_ids(id);
  }
  const v1::Calibration& calib = job->recipe().calibration();
  if (!calib.path().empty()) {
    return absl::InvalidArgumentError(
        "recipe: calibration.path: a job run by the service reads uploaded datasets, not local "
        "files; upload the text (compressctl datasets upload) and set dataset_id + file");
  }
  if (!calib.dataset_id().empty()) {
    const auto& ids = job->dataset_ids();
    if (std::find(ids.begin(), ids.end(), calib.dataset_id()) == ids.end()) {
      job->add_dataset_ids(calib.dataset_id());
    }
  }
  return absl::OkStatus();
}

}  // namespace

JobService::JobService(Store& store, EventBus& bus, WorkNotifier& work, ServerMetrics& metrics)
    : store_(store), bus_(bus), work_(work), metrics_(metrics) {}

absl::StatusOr<v1::Job> JobService::Submit(const v1::SubmitJobRequest& req, const Scope& scope,
                                           const std::string& submitted_by) {
  // A retry returns the first job as it is now, whatever else it carries.
  std::string tenant = scope.tenant;
  absl::StatusOr<v1::Model> model = store_.GetModel(req.model_id());
  if (tenant.empty()) tenant = model.ok() ? model->tenant() : kDefaultTenant;
  ASSIGN_OR_RETURN(std::optional<v1::Job> existing,
                   store_.FindJobByRequestId(req.request_id(), tenant));
  if (existing) return *std::move(existing);

  v1::Job job;
  RETURN_IF_ERROR(ValidateSubmit(req, job.mutable_recipe()));
  if (model.ok() && !scope.Allows(model->tenant())) {
    model = absl::NotFoundError(absl::StrCat("model ", req.model_id(), " not found"));
  }
  if (!model.ok()) {
    return absl::Status(model.status().code(),
                        absl::StrCat("model_id: ", model.status().message()));
  }
  RETURN_IF_ERROR(CheckQueuedQuota(model->tenant()));

  const int64_t now = NowMs();
  job.set_tenant(model->tenant());
  job.set_submitted_by(submitted_by);
  if (!v1::Priority_IsValid(req.priority())) {
    return absl::InvalidArgumentError(absl::StrCat("priority: unknown value ", req.priority()));
  }
  job.set_priority(req.priority() == v1::PRIORITY_UNSPECIFIED ? v1::PRIORITY_NORMAL
                                                              : req.priority());
  job.set_id(NewId("job-"));
  job.set_model_id(req.model_id());
  job.set_request_id(req.request_id());
  job.set_max_attempts(req.max_attempts() == 0 ? kDefaultMaxAttempts : req.max_attempts());
  job.set_create_time_ms(now);
  *job.mutable_dataset_ids() = req.dataset_ids();
  RETURN_IF_ERROR(AddEvaluationDatasets(&job));
  RETURN_IF_ERROR(CheckEvaluationFiles(job.recipe(), job.tenant()));
  std::vector<v1::JobEvent> events;
  RETURN_IF_ERROR(ApplyTransition(&job, v1::QUEUED, "submitted", now, &events));

  bool created = false;
  ASSIGN_OR_RETURN(v1::Job stored, store_.CreateJob(job, events.front(), &created));
  if (created) {
    bus_.Publish(stored.id(), 1);
    RefreshMetrics();
    work_.NotifyWorkAvailable();
  }
  return stored;
}

absl::Status JobService::CheckQueuedQuota(const std::string& tenant) {
  absl::StatusOr<v1::Tenant> found = store_.GetTenant(tenant);
  if (absl::IsNotFound(found.status())) return absl::OkStatus();  // no row: no quota
  RETURN_IF_ERROR(found.status());
  const int32_t limit = found->quota().max_queued_jobs();
  if (limit > 0 && found->queued_jobs() >= limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("quota max_queued_jobs of tenant \"", tenant, "\": limit ", limit, " jobs, ",
                     found->queued_jobs(), " QUEUED now; wait for some to start or cancel them"));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Dataset> JobService::DatasetOf(const std::string& id,
                                                  const std::string& tenant) {
  absl::StatusOr<v1::Dataset> dataset = store_.GetDataset(id);
  if (dataset.ok() && dataset->tenant() != tenant) {
    return absl::NotFoundError(absl::StrCat("dataset ", id, " not found"));
  }
  return dataset;
}

absl::Status JobService::CheckEvaluationFiles(const v1::Recipe& recipe, const std::string& tenant) {
  const auto& sets = recipe.evaluation().perplexity();
  for (int i = 0; i < sets.size(); ++i) {
    absl::StatusOr<v1::Dataset> dataset = DatasetOf(sets[i].dataset_id(), tenant);
    if (!dataset.ok()) {
      return absl::Status(dataset.status().code(),
                          absl::StrCat("recipe: evaluation.perplexity[", i, "].dataset_id: ",
                                       dataset.status().message()));
    }
    const auto& files = dataset->files();
    if (std::none_of(files.begin(), files.end(),
                     [&](const v1::FileEntry& f) { return f.path() == sets[i].file(); })) {
      std::vector<std::string> names;
      for (const v1::FileEntry& f : files) names.push_back(f.path());
      return absl::InvalidArgumentError(absl::StrCat(
          "recipe: evaluation.perplexity[", i, "].file: dataset ", dataset->id(), " has no file \"",
          sets[i].file(), "\" (files: ", absl::StrJoin(names, ", "), ")"));
    }
  }
  const v1::Calibration& calib = recipe.calibration();
  if (calib.dataset_id().empty()) return absl::OkStatus();
  absl::StatusOr<v1::Dataset> dataset = DatasetOf(calib.dataset_id(), tenant);
  if (!dataset.ok()) {
    return absl::Status(dataset.status().code(), absl::StrCat("recipe: calibration.dataset_id: ",
                                                              dataset.status().message()));
  }
  if (FilesUnder(*dataset, calib.file()).empty()) {
    return absl::InvalidArgumentError(absl::StrCat("recipe: calibration.file: dataset ",
                                                   dataset->id(), " has no file or folder \"",
                                                   calib.file(), "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> JobService::Get(const std::string& job_id, const Scope& scope) {
  if (job_id.empty()) return absl::InvalidArgumentError("job_id: required");
  ASSIGN_OR_RETURN(v1::Job job, store_.GetJob(job_id));
  if (!scope.Allows(job.tenant())) {
    return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  return job;
}

absl::StatusOr<v1::ListJobsResponse> JobService::List(const v1::ListJobsRequest& req,
                                                      const Scope& scope) {
  if (!v1::JobState_IsValid(req.state())) {
    return absl::InvalidArgumentError(absl::StrCat("state: unknown job state ", req.state()));
  }
  JobFilter filter;
  filter.state = req.state();
  filter.model_id = req.model_id();
  filter.newest_first = req.newest_first();
  // A tenant's key lists its own jobs whatever it asks; an admin may narrow.
  filter.tenant = scope.tenant.empty() ? req.tenant() : scope.tenant;
  ASSIGN_OR_RETURN(Page<v1::Job> page,
                   store_.ListJobs(filter, req.page_size(), req.page_token()));
  v1::ListJobsResponse resp;
  for (v1::Job& job : page.items) *resp.add_jobs() = std::move(job);
  resp.set_next_page_token(page.next_page_token);
  return resp;
}

absl::StatusOr<v1::Job> JobService::Cancel(const std::string& job_id, const Scope& scope) {
  RETURN_IF_ERROR(Get(job_id, scope).status());
  const int64_t now = NowMs();
  ASSIGN_OR_RETURN(int64_t seq,
                   store_.UpdateJob(job_id, [&](v1::Job& job, TaskRecord& task,
                                                std::vector<v1::JobEvent>& events) {
                     if (IsTerminal(job.state())) {
                       std::string_view state = JobStateName(job.state());
                       return absl::FailedPreconditionError(absl::StrCat(
                           "job ", job_id, " is already ",
                           absl::string_view(state.data(), state.size()),
                           "; only QUEUED or RUNNING jobs can be cancelled"));
                     }
                     // A RUNNING job keeps its lease so the worker hears
                     // cancel=true on its next heartbeat.
                     task.cancel_requested = job.state() == v1::RUNNING;
                     return ApplyTransition(&job, v1::CANCELLED, "cancelled by user", now,
                                            &events);
                   }));
  bus_.Publish(job_id, seq);
  RefreshMetrics();
  return store_.GetJob(job_id);
}

absl::Status JobService::Delete(const std::string& job_id, const Scope& scope) {
  ASSIGN_OR_RETURN(v1::Job job, Get(job_id, scope));
  if (!IsTerminal(job.state())) {
    absl::StatusOr<v1::Job> cancelled = Cancel(job_id);
    // It may have finished in between: then it is deleted as it is.
    if (!cancelled.ok() && !absl::IsFailedPrecondition(cancelled.status())) {
      return cancelled.status();
    }
  }
  RETURN_IF_ERROR(store_.DeleteJob(job_id));
  bus_.Publish(job_id, 0);  // open WatchJob streams find the job gone
  RefreshMetrics();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> JobService::ReadEvents(const std::string& job_id,
                                                                 int64_t after_sequence,
                                                                 int limit) {
  RETURN_IF_ERROR(Get(job_id).status());
  return store_.ReadEvents(job_id, after_sequence, limit);
}

void JobService::RefreshMetrics() {
  absl::StatusOr<std::vector<std::pair<v1::JobState, int64_t>>> counts = store_.CountJobsByState();
  if (counts.ok()) metrics_.SetJobCounts(*counts);
}

}  // namespace compressd
