// Store: jobs, their tasks (leases) and the transactional UpdateJob.

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/device_need.h"
#include "common/status_macros.h"
#include "common/util.h"
#include "server/core/job_state.h"
#include "server/store/lease_check.h"
#include "server/store/sql/db.h"
#include "server/store/store.h"
#include "server/store/store_internal.h"

namespace compressd {
namespace {

using sql::Stmt;
using store_internal::ClampToInt64;
using store_internal::PartLease;

constexpr char kTaskKind[] = "compress";
constexpr char kTaskColumns[] =
    "task_id, job_id, kind, worker_id, lease_token, lease_expire_ms, cancel_requested";

TaskRecord ReadTask(const Stmt& stmt) {
  TaskRecord task;
  task.task_id = stmt.Text(0);
  task.job_id = stmt.Text(1);
  task.kind = stmt.Text(2);
  task.worker_id = stmt.Text(3);
  task.lease_token = stmt.Text(4);
  task.lease_expire_ms = stmt.Int(5);
  task.cancel_requested = stmt.Int(6) != 0;
  return task;
}

absl::Status LoadArtifacts(sql::Db* db, v1::Job* job) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db,
                                            "SELECT proto FROM artifacts WHERE job_id = ?"
                                            " ORDER BY path"));
  stmt.Bind(1, job->id());
  job->clear_artifacts();
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    RETURN_IF_ERROR(stmt.Proto(0, job->add_artifacts(), absl::StrCat("artifact of ", job->id())));
  }
  return absl::OkStatus();
}

// Another tenant's record is as missing as one that does not exist.
absl::Status RequireExists(sql::Db* db, const char* table, const std::string& id,
                           const std::string& tenant, const std::string& field, const char* noun) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db, absl::StrCat("SELECT 1 FROM ", table,
                                                             " WHERE id = ? AND tenant = ?")));
  stmt.Bind(1, id).Bind(2, tenant);
  ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return absl::NotFoundError(absl::StrCat(field, ": ", noun, " ", id, " not found"));
  return absl::OkStatus();
}

// The job row without artifacts (those live in their own table).
std::string SerializeJobRow(v1::Job job) {
  job.clear_artifacts();
  return job.SerializeAsString();
}

}  // namespace

absl::StatusOr<v1::Job> Store::LoadJobLocked(const std::string& id) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, "SELECT proto FROM jobs WHERE id = ?"));
  stmt.Bind(1, id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  v1::Job job;
  RETURN_IF_ERROR(stmt.Proto(0, &job, absl::StrCat("job ", id)));
  store_internal::FillTenant(job);
  RETURN_IF_ERROR(LoadArtifacts(db_, &job));
  return job;
}

absl::StatusOr<TaskRecord> Store::LoadTaskLocked(const std::string& job_id) {
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kTaskColumns,
                                                              " FROM tasks WHERE job_id = ?"
                                                              " AND kind = ?")));
  stmt.Bind(1, job_id).Bind(2, kTaskKind);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::InternalError(absl::StrCat("job ", job_id, " has no task record"));
  return ReadTask(stmt);
}

absl::Status Store::SaveJobLocked(const v1::Job& job, const TaskRecord& task,
                                  bool artifacts_changed) {
  ASSIGN_OR_RETURN(Stmt update,
                   Stmt::Prepare(db_, "UPDATE jobs SET state = ?, proto = ?, memory_needed = ?"
                                      " WHERE id = ?"));
  RETURN_IF_ERROR(update.Bind(1, int64_t{job.state()})
                      .BindBlob(2, SerializeJobRow(job))
                      .Bind(3, ClampToInt64(job.memory_needed_bytes()))
                      .Bind(4, job.id())
                      .Run());
  if (job.state() == v1::QUEUED) RETURN_IF_ERROR(NotifyLocked(kWorkChannel, ""));
  ASSIGN_OR_RETURN(Stmt task_update,
                   Stmt::Prepare(db_,
                                 "UPDATE tasks SET worker_id = ?, lease_token = ?,"
                                 " lease_expire_ms = ?, cancel_requested = ? WHERE task_id = ?"));
  RETURN_IF_ERROR(task_update.Bind(1, task.worker_id)
                      .Bind(2, task.lease_token)
                      .Bind(3, task.lease_expire_ms)
                      .Bind(4, int64_t{task.cancel_requested})
                      .Bind(5, task.task_id)
                      .Run());
  if (!artifacts_changed) return absl::OkStatus();
  ASSIGN_OR_RETURN(Stmt clear, Stmt::Prepare(db_, "DELETE FROM artifacts WHERE job_id = ?"));
  RETURN_IF_ERROR(clear.Bind(1, job.id()).Run());
  for (const v1::Artifact& artifact : job.artifacts()) {
    ASSIGN_OR_RETURN(Stmt insert, Stmt::Prepare(db_,
                                                "INSERT INTO artifacts (id, job_id, path, proto)"
                                                " VALUES (?, ?, ?, ?)"));
    RETURN_IF_ERROR(insert.Bind(1, artifact.id())
                        .Bind(2, job.id())
                        .Bind(3, artifact.path())
                        .BindProto(4, artifact)
                        .Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> Store::CreateJob(const v1::Job& job, const v1::JobEvent& first_event,
                                         bool* created) {
  *created = false;
  if (job.id().empty()) return absl::InvalidArgumentError("job: empty id");
  v1::Job row = job;
  if (row.tenant().empty()) row.set_tenant(kDefaultTenant);
  if (row.priority() == v1::PRIORITY_UNSPECIFIED) row.set_priority(v1::PRIORITY_NORMAL);
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  if (!row.request_id().empty()) {
    ASSIGN_OR_RETURN(Stmt existing, Stmt::Prepare(db_,
                                                  "SELECT id FROM jobs WHERE request_id = ?"
                                                  " AND tenant = ?"));
    existing.Bind(1, row.request_id()).Bind(2, row.tenant());
    ASSIGN_OR_RETURN(bool found, existing.Step());
    if (found) return LoadJobLocked(existing.Text(0));
  }
  RETURN_IF_ERROR(RequireExists(db_, "models", row.model_id(), row.tenant(), "model_id", "model"));
  for (int i = 0; i < row.dataset_ids_size(); ++i) {
    RETURN_IF_ERROR(RequireExists(db_, "datasets", row.dataset_ids(i), row.tenant(),
                                  absl::StrCat("dataset_ids[", i, "]"), "dataset"));
  }
  ASSIGN_OR_RETURN(Stmt insert, Stmt::Prepare(db_,
                                              "INSERT INTO jobs (id, model_id, state, request_id,"
                                              " create_time_ms, proto, device_needed, tenant,"
                                              " priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  RETURN_IF_ERROR(insert.Bind(1, row.id())
                      .Bind(2, row.model_id())
                      .Bind(3, int64_t{row.state()})
                      .Bind(4, row.request_id())
                      .Bind(5, row.create_time_ms())
                      .BindBlob(6, SerializeJobRow(row))
                      .Bind(7, int64_t{static_cast<int>(DeviceNeedOf(row.recipe()))})
                      .Bind(8, row.tenant())
                      .Bind(9, int64_t{row.priority()})
                      .Run());
  ASSIGN_OR_RETURN(Stmt task, Stmt::Prepare(db_, "INSERT INTO tasks (task_id, job_id, kind)"
                                                 " VALUES (?, ?, ?)"));
  RETURN_IF_ERROR(task.Bind(1, NewId("task-")).Bind(2, job.id()).Bind(3, kTaskKind).Run());
  std::vector<v1::JobEvent> events = {first_event};
  RETURN_IF_ERROR(AppendEventsLocked(job.id(), events).status());
  RETURN_IF_ERROR(NotifyLocked(kWorkChannel, ""));
  ASSIGN_OR_RETURN(v1::Job stored, LoadJobLocked(job.id()));
  RETURN_IF_ERROR(txn.Commit());
  *created = true;
  return stored;
}

absl::StatusOr<std::optional<v1::Job>> Store::FindJobByRequestId(const std::string& request_id,
                                                                 const std::string& tenant) {
  if (request_id.empty()) return std::optional<v1::Job>();
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT id FROM jobs WHERE request_id = ?"
                                            " AND tenant = ?"));
  stmt.Bind(1, request_id).Bind(2, tenant);
  ASSIGN_OR_RETURN(bool found, stmt.Step());
  if (!found) return std::optional<v1::Job>();
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(stmt.Text(0)));
  return std::optional<v1::Job>(std::move(job));
}

absl::StatusOr<v1::Job> Store::GetJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  return LoadJobLocked(id);
}

absl::StatusOr<Page<v1::Job>> Store::ListJobs(v1::JobState state, int page_size,
                                              const std::string& page_token,
                                              const std::string& tenant) {
  JobFilter filter;
  filter.state = state;
  filter.tenant = tenant;
  return ListJobs(filter, page_size, page_token);
}

absl::StatusOr<Page<v1::Job>> Store::ListJobs(const JobFilter& filter, int page_size,
                                              const std::string& page_token) {
  ASSIGN_OR_RETURN(int size, NormalizePageSize(page_size));
  PagePosition start{filter.newest_first ? INT64_MAX : INT64_MIN, ""};
  if (!page_token.empty()) {
    ASSIGN_OR_RETURN(start, DecodePageToken(page_token));
  }
  // Both orders walk an index on (create_time_ms, id) (jobs_by_time, or the
  // tenant's, model's or state's) from the token's position on.
  static constexpr char kOldest[] =
      "SELECT proto, create_time_ms, id FROM jobs WHERE (?1 = 0 OR state = ?1)"
      " AND (create_time_ms, id) > (?2, ?3) AND (?5 = '' OR tenant = ?5)"
      " AND (?6 = '' OR model_id = ?6) ORDER BY create_time_ms, id LIMIT ?4";
  static constexpr char kNewest[] =
      "SELECT proto, create_time_ms, id FROM jobs WHERE (?1 = 0 OR state = ?1)"
      " AND (create_time_ms, id) < (?2, ?3) AND (?5 = '' OR tenant = ?5)"
      " AND (?6 = '' OR model_id = ?6) ORDER BY create_time_ms DESC, id DESC LIMIT ?4";
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, filter.newest_first ? kNewest : kOldest));
  // Newest first starts after every id: "~" sorts after the hex ids.
  const std::string start_id = start.id.empty() && filter.newest_first ? "~" : start.id;
  stmt.Bind(1, int64_t{filter.state}).Bind(2, start.create_time_ms).Bind(3, start_id);
  stmt.Bind(4, int64_t{size} + 1).Bind(5, filter.tenant).Bind(6, filter.model_id);
  ASSIGN_OR_RETURN(Page<v1::Job> page, store_internal::ReadPage<v1::Job>(stmt, size, "jobs"));
  for (v1::Job& job : page.items) RETURN_IF_ERROR(LoadArtifacts(db_, &job));
  return page;
}

absl::StatusOr<std::vector<std::pair<v1::JobState, int64_t>>> Store::CountJobsByState() {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, "SELECT state, COUNT(*) FROM jobs GROUP BY state"
                                                 " ORDER BY state"));
  std::vector<std::pair<v1::JobState, int64_t>> counts;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    counts.emplace_back(static_cast<v1::JobState>(stmt.Int(0)), stmt.Int(1));
  }
  return counts;
}

absl::StatusOr<int64_t> Store::UpdateJob(const std::string& job_id, const JobMutation& fn) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(job_id));
  ASSIGN_OR_RETURN(TaskRecord task, LoadTaskLocked(job_id));
  const bool was_running = job.state() == v1::RUNNING;
  std::string artifacts_before;
  for (const v1::Artifact& a : job.artifacts()) artifacts_before += a.SerializeAsString();
  std::vector<v1::JobEvent> events;
  RETURN_IF_ERROR(fn(job, task, events));
  std::string artifacts_after;
  for (const v1::Artifact& a : job.artifacts()) artifacts_after += a.SerializeAsString();
  job.set_id(job_id);
  RETURN_IF_ERROR(SaveJobLocked(job, task, artifacts_before != artifacts_after));
  if (!was_running && job.state() == v1::RUNNING) {
    RETURN_IF_ERROR(store_internal::TakeLeaseTurn(db_, job.tenant()));
  }
  // Checkpoints serve retries only; a job that can no longer run drops them.
  if (IsTerminal(job.state())) RETURN_IF_ERROR(store_internal::DeleteCheckpoints(db_, job_id));
  // Parts belong to one attempt of a running job.
  if (job.state() != v1::RUNNING) RETURN_IF_ERROR(store_internal::DeleteParts(db_, job_id));
  ASSIGN_OR_RETURN(int64_t seq, AppendEventsLocked(job_id, events));
  RETURN_IF_ERROR(txn.Commit());
  return seq;
}

absl::Status Store::DeleteJob(const std::string& id) {
  absl::MutexLock lock(&mu_);
  sql::Transaction txn(db_);
  RETURN_IF_ERROR(txn.status());
  ASSIGN_OR_RETURN(v1::Job job, LoadJobLocked(id));
  if (!IsTerminal(job.state())) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " is not finished; cancel it before deleting it"));
  }
  for (const char* sql : {"DELETE FROM jobs WHERE id = ?", "DELETE FROM tasks WHERE job_id = ?",
                          "DELETE FROM events WHERE job_id = ?",
                          "DELETE FROM artifacts WHERE job_id = ?"}) {
    ASSIGN_OR_RETURN(Stmt del, Stmt::Prepare(db_, sql));
    RETURN_IF_ERROR(del.Bind(1, id).Run());
  }
  RETURN_IF_ERROR(store_internal::DeleteCheckpoints(db_, id));
  RETURN_IF_ERROR(store_internal::DeleteParts(db_, id));
  RETURN_IF_ERROR(NotifyLocked(kEventsChannel, absl::StrCat(id, " 0")));  // streams find it gone
  return txn.Commit();
}

absl::StatusOr<std::vector<std::string>> Store::QueuedJobsNeeding(DeviceNeed need, int limit) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_,
                                            "SELECT id FROM jobs WHERE state = ?"
                                            " AND device_needed = ?"
                                            " ORDER BY create_time_ms, rowid LIMIT ?"));
  stmt.Bind(1, int64_t{v1::QUEUED})
      .Bind(2, int64_t{static_cast<int>(need)})
      .Bind(3, int64_t{limit});
  return store_internal::ReadFirstColumn(stmt);
}

absl::StatusOr<std::vector<TaskRecord>> Store::ExpiredLeases(int64_t now_ms) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kTaskColumns,
                                                              " FROM tasks WHERE lease_expire_ms"
                                                              " > 0 AND lease_expire_ms <= ?"
                                                              " ORDER BY lease_expire_ms")));
  stmt.Bind(1, now_ms);
  std::vector<TaskRecord> tasks;
  while (true) {
    ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) break;
    tasks.push_back(ReadTask(stmt));
  }
  return tasks;
}

absl::StatusOr<TaskRecord> Store::GetTask(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  if (IsPartId(task_id)) {
    absl::StatusOr<PartRecord> part = LoadPartLocked(task_id);
    if (!part.ok()) return PartGone(part.status(), task_id);
    return PartLease(*part);
  }
  ASSIGN_OR_RETURN(Stmt stmt, Stmt::Prepare(db_, absl::StrCat("SELECT ", kTaskColumns,
                                                              " FROM tasks WHERE task_id = ?")));
  stmt.Bind(1, task_id);
  ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("task ", task_id, " not found"));
  return ReadTask(stmt);
}

}  // namespace compressd
