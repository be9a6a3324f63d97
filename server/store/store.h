// Durable state of compressd in SQLite (WAL mode, synchronous=FULL): models,
// datasets, jobs, tasks (leases), job events, artifacts and checkpoints. Every mutation is
// one SQLite transaction, committed before the call returns, so an
// acknowledged change survives a crash or restart. Records are stored as
// serialized protos next to indexed columns (id, state, create time).
// Lists are ordered by (create_time_ms, id); page tokens are opaque.
//
// This class is storage only; the rules (legal job transitions:
// server/core/job_state.h; lease semantics: the scheduler, and lease_check.h
// for whether a lease is current) live outside it. JobService,
// CheckpointService and the scheduler apply them through the transactional
// methods below. Thread-safe: one connection guarded by a mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/device_need.h"
#include "compressd/v1/admin.pb.h"
#include "compressd/v1/compressd.pb.h"
#include "server/store/sql/db.h"
#include "server/store/sql/postgres_db.h"


namespace compressd {

// The tenant of records written without one (and of every row from before
// schema 6).
inline constexpr char kDefaultTenant[] = "default";

// An API key as stored: its public record plus the salt and the salted HMAC
// of its secret (server/auth/api_key.h); never the secret itself.
struct ApiKeyRecord {
  v1::ApiKey key;
  std::string salt;  // hex
  std::string hash;  // hex HMAC-SHA256
};

// What a tenant uses now, against its quota.
struct TenantUsage {
  uint64_t stored_bytes = 0;  // models + datasets
  int64_t queued_jobs = 0;
  int64_t running_jobs = 0;
};

// Persisted lease state of a job's task. A job has one task per attempt
// sequence in this issue (kind "compress"); later issues add more kinds.
struct TaskRecord {
  std::string task_id;
  std::string job_id;
  std::string kind;             // "compress"
  std::string worker_id;        // empty when not leased
  std::string lease_token;      // empty when not leased
  int64_t lease_expire_ms = 0;  // 0 when not leased
  bool cancel_requested = false;
};

// A checkpoint of a job (kept across its attempts): the blob holding the
// content of `name`. `job_id` is the owner: a job's id, or
// SharedCheckpointOwner(model) for the checkpoints a model's jobs share.
struct CheckpointRecord {
  std::string job_id;
  std::string name;
  std::string sha256;
  uint64_t size = 0;
  int64_t created_ms = 0;
};

// A part of a RUNNING job's work (worker.proto Part), leased to workers like
// a task. Parts exist only while their job is RUNNING: saving the job in any
// other state deletes them. lease_expire_ms 0 with a lease_token: claimed by
// the job's own task, the lease lasting as long as that task's.
// The owner of the checkpoints every job of model `model_id` shares
// (CheckpointService: names under "shared/"); they outlive the jobs and go
// with the model (Store::DeleteModel).
inline std::string SharedCheckpointOwner(const std::string& model_id) {
  return "model:" + model_id;
}

struct PartRecord {
  std::string part_id;  // "part-..."
  std::string job_id;
  std::string name;
  std::string payload;
  std::string result;   // the checkpoint name of its result
  int state = 1;        // v1::PartStatus::State
  std::string worker_id;
  std::string lease_token;
  int64_t lease_expire_ms = 0;
  int failures = 0;
  std::string error;
};

// Whether a task id names a part (PartRecord::part_id) rather than a job's task.
bool IsPartId(const std::string& task_id);

// Which jobs Store::ListJobs returns; empty fields match everything.
struct JobFilter {
  v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
  std::string tenant;
  std::string model_id;
  bool newest_first = false;
};

// Duties replicas take turns at (Store::RunExclusive).
inline constexpr int64_t kBlobGcDuty = 1;
inline constexpr int64_t kBlobScrubDuty = 2;

// Store's notification channels (Store::ListenForChanges).
inline constexpr char kEventsChannel[] = "compressd_events";
inline constexpr char kWorkChannel[] = "compressd_work";

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_page_token;  // empty on the last page
};

class Store {
 public:
  // Opens (creating if needed) the SQLite database at path `target`, or the
  // PostgreSQL database at URL `target` (postgresql://...), and applies the
  // schema (server/store/schema.h).
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& target);
  ~Store();  // StopListening()

  // ---- several processes on one database (PostgreSQL) ----
  // What other compressd processes changed, as they commit: a job's events
  // appended up to `last_sequence` (0: the job was deleted), or work queued.
  // Each is a hint to read the Store again; after on_reconnect (the listener
  // lost its connection, so hints were missed) read everything again.
  struct ChangeHandlers {
    std::function<void(const std::string& job_id, int64_t last_sequence)> on_events;
    std::function<void()> on_work;
    std::function<void()> on_reconnect;
  };
  // Starts a listener thread on its own connection (PostgreSQL LISTEN). On
  // SQLite, which one process owns, a no-op. UNAVAILABLE if it cannot connect.
  absl::Status ListenForChanges(ChangeHandlers handlers);
  // Stops the listener; no handler runs after it returns.
  void StopListening();
  // Runs `fn` unless another process is running duty `duty` (a PostgreSQL
  // advisory lock held around it); returns whether it ran. Background
  // duties (blob GC, scrub) run through this so replicas take turns.
  absl::StatusOr<bool> RunExclusive(int64_t duty, const std::function<void()>& fn);
  bool shared() const { return shared_; }  // PostgreSQL: other processes may write too

  // ---- models and datasets ----
  absl::Status InsertModel(const v1::Model& model);
  absl::StatusOr<v1::Model> GetModel(const std::string& id);  // NOT_FOUND
  // `tenant` empty: every tenant's. The same for datasets and jobs.
  absl::StatusOr<Page<v1::Model>> ListModels(int page_size, const std::string& page_token,
                                             const std::string& tenant = "");
  // FAILED_PRECONDITION if a QUEUED or RUNNING job uses the model; NOT_FOUND.
  // The model's shared checkpoints go with it.
  absl::Status DeleteModel(const std::string& id);
  absl::Status InsertDataset(const v1::Dataset& dataset);
  absl::StatusOr<v1::Dataset> GetDataset(const std::string& id);
  absl::StatusOr<Page<v1::Dataset>> ListDatasets(int page_size, const std::string& page_token,
                                                 const std::string& tenant = "");
  // FAILED_PRECONDITION naming the job if a QUEUED or RUNNING job uses the
  // dataset; NOT_FOUND.
  absl::Status DeleteDataset(const std::string& id);

  // ---- jobs ----
  // Inserts `job` (state QUEUED) with its task and first event unless a job
  // of its tenant with the same non-empty request_id exists, in which case
  // that job is returned and *created is false. NOT_FOUND naming the field if
  // the model or a dataset does not exist in the job's tenant (checked in the
  // same transaction).
  absl::StatusOr<v1::Job> CreateJob(const v1::Job& job, const v1::JobEvent& first_event,
                                    bool* created);
  // The job submitted with this non-empty request_id, if any.
  absl::StatusOr<std::optional<v1::Job>> FindJobByRequestId(
      const std::string& request_id, const std::string& tenant = kDefaultTenant);
  absl::StatusOr<v1::Job> GetJob(const std::string& id);  // with artifacts
  absl::StatusOr<Page<v1::Job>> ListJobs(v1::JobState state, int page_size,
                                         const std::string& page_token,
                                         const std::string& tenant = "");
  // Jobs matching `filter`, a page at a time in creation order (newest first
  // when filter.newest_first); each page is one indexed range scan.
  absl::StatusOr<Page<v1::Job>> ListJobs(const JobFilter& filter, int page_size,
                                         const std::string& page_token);
  // Deletes a job in a terminal state with everything that is its own: its
  // task, events, artifact records, checkpoints and parts (blobs are left to
  // the blob GC). FAILED_PRECONDITION unless terminal; NOT_FOUND.
  absl::Status DeleteJob(const std::string& id);
  // Counts of jobs by state (for metrics and the dashboard).
  absl::StatusOr<std::vector<std::pair<v1::JobState, int64_t>>> CountJobsByState();

  // Runs `fn` inside one transaction with the job row (with artifacts) and
  // task loaded; `fn` mutates them and appends events (sequence numbers are
  // assigned here, time_ms defaults to now). The artifacts table is made to
  // match job.artifacts, so `fn` adds or drops artifacts by editing that
  // list. A job saved in a terminal state loses its checkpoints in the same
  // transaction. Returning non-OK from `fn` rolls everything back. `fn` must not
  // call back into the Store. Returns the sequence number of the last event
  // written (0 if none). NOT_FOUND for an unknown job.
  using JobMutation = std::function<absl::Status(v1::Job& job, TaskRecord& task,
                                                 std::vector<v1::JobEvent>& new_events)>;
  absl::StatusOr<int64_t> UpdateJob(const std::string& job_id, const JobMutation& fn);

  // The next QUEUED job to lease, if any, among those a worker with
  // `worker_memory` bytes can hold (Job.memory_needed_bytes), whose device
  // need (common/device_need.h) has its bit in `device_mask`, and whose
  // tenant is under its max_running_jobs: fair across tenants (the tenant
  // whose last lease is oldest goes first: round-robin), then by priority
  // (high first), then oldest first. A job that starts RUNNING takes its
  // tenant's turn (UpdateJob).
  absl::StatusOr<std::optional<std::string>> OldestQueuedJob(
      uint64_t worker_memory = UINT64_MAX, int device_mask = kAnyDeviceMask);
  // The QUEUED jobs needing `need` (oldest first, at most `limit`).
  absl::StatusOr<std::vector<std::string>> QueuedJobsNeeding(DeviceNeed need, int limit);
  // Task records whose lease expired at or before `now_ms`.
  absl::StatusOr<std::vector<TaskRecord>> ExpiredLeases(int64_t now_ms);
  // The lease record of `task_id`: a job's task, or a part as a TaskRecord
  // (kind "part", the part's id, lease and job). NOT_FOUND for an unknown
  // task; FAILED_PRECONDITION for a part that is gone (its job left RUNNING).
  absl::StatusOr<TaskRecord> GetTask(const std::string& task_id);

  // ---- parts (fan-out) ----
  // Adds the parts whose name the job does not have yet (state QUEUED), if
  // `check` accepts the job and its task (the coordinator's lease); returns
  // how many were added. NOT_FOUND for an unknown job.
  absl::StatusOr<int> SubmitParts(const std::string& job_id, const std::vector<PartRecord>& parts,
                                  const std::function<absl::Status(const v1::Job&,
                                                                   const TaskRecord&)>& check);
  // Leases the oldest QUEUED part to `worker_id` with `lease_token` until
  // `expire_ms` (0: bound to the job's task lease): of job `job_id` after
  // `check` accepts it and its task, or (job_id empty, check null) of any
  // job. nullopt when none is queued.
  absl::StatusOr<std::optional<PartRecord>> LeaseQueuedPart(
      const std::string& job_id, const std::string& worker_id, const std::string& lease_token,
      int64_t expire_ms,
      const std::function<absl::Status(const v1::Job&, const TaskRecord&)>& check);
  // The job's parts named in `names` (every part when empty), in submission
  // order; NOT_FOUND naming the first unknown name.
  absl::StatusOr<std::vector<PartRecord>> GetParts(const std::string& job_id,
                                                   const std::vector<std::string>& names);
  // Runs `fn` on the part and its job in one transaction and saves the part.
  // NOT_FOUND when the part is gone (its job left RUNNING).
  using PartMutation = std::function<absl::Status(const v1::Job& job, PartRecord& part)>;
  absl::Status UpdatePart(const std::string& part_id, const PartMutation& fn);
  absl::StatusOr<PartRecord> GetPart(const std::string& part_id);  // NOT_FOUND
  // Parts whose (worker) lease expired at or before `now_ms`.
  absl::StatusOr<std::vector<PartRecord>> ExpiredParts(int64_t now_ms);

  // ---- events ----
  // Appends events (sequence assigned) outside a state change; returns the last sequence.
  // NOT_FOUND for an unknown job.
  absl::StatusOr<int64_t> AppendEvents(const std::string& job_id, std::vector<v1::JobEvent> events);
  // Events with sequence > after_sequence in order, at most `limit` (<= 0: 1000).
  absl::StatusOr<std::vector<v1::JobEvent>> ReadEvents(const std::string& job_id,
                                                       int64_t after_sequence, int limit);

  // ---- artifacts ----
  // Replaces any artifact of the same job with the same path.
  absl::Status InsertArtifact(const v1::Artifact& artifact);
  absl::StatusOr<v1::Artifact> GetArtifact(const std::string& id);

  // ---- checkpoints ----
  // Inserts or replaces checkpoint (record.job_id, record.name) if `check`
  // accepts the job and its task, in one transaction, so a lease that ended
  // concurrently never leaves a row behind. NOT_FOUND for an unknown job.
  // The blob is not touched (the caller stored it first).
  using JobCheck = std::function<absl::Status(const v1::Job& job, const TaskRecord& task)>;
  // `check` gets the lease record of `lease_task_id` (a part's, see GetTask)
  // when it is not empty, else the job's task. The lease is of job
  // `lease_job_id` (empty: record.job_id; a model's shared checkpoint is
  // written under the lease of one of its jobs).
  absl::Status PutCheckpoint(const CheckpointRecord& record, const JobCheck& check,
                             const std::string& lease_task_id = "",
                             const std::string& lease_job_id = "");
  // NOT_FOUND naming the job and checkpoint when there is none.
  absl::StatusOr<CheckpointRecord> GetCheckpoint(const std::string& job_id,
                                                 const std::string& name);
  // The job's checkpoints in name order.
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(const std::string& job_id);

  // ---- tenants, API keys, audit (store_tenants.cc) ----
  // ALREADY_EXISTS for a taken name.
  absl::Status InsertTenant(const v1::Tenant& tenant);
  // With its current use filled in. NOT_FOUND.
  absl::StatusOr<v1::Tenant> GetTenant(const std::string& name);
  absl::StatusOr<std::vector<v1::Tenant>> ListTenants();
  absl::Status SetQuota(const std::string& tenant, const v1::Quota& quota);  // NOT_FOUND
  absl::StatusOr<TenantUsage> Usage(const std::string& tenant);
  // Tenants with as many RUNNING jobs as their max_running_jobs allows, and
  // that limit.
  absl::StatusOr<std::vector<std::pair<std::string, int>>> TenantsAtRunningLimit();
  // The tenant's QUEUED jobs, oldest first, at most `limit`.
  absl::StatusOr<std::vector<std::string>> QueuedJobsOfTenant(const std::string& tenant, int limit);
  absl::Status InsertKey(const ApiKeyRecord& record);
  absl::StatusOr<ApiKeyRecord> GetKey(const std::string& key_id);  // NOT_FOUND
  // The keys of `tenant` (empty: every key), oldest first.
  absl::StatusOr<std::vector<v1::ApiKey>> ListKeys(const std::string& tenant);
  // Saves the public record (revoked, last_used_ms). NOT_FOUND.
  absl::Status UpdateKey(const v1::ApiKey& key);
  // Appends (sequence and time assigned); returns the sequence.
  absl::StatusOr<int64_t> AppendAudit(v1::AuditEvent event);
  // After `after_sequence`, oldest first; `tenant` empty: every tenant.
  absl::StatusOr<std::vector<v1::AuditEvent>> ListAudit(const std::string& tenant,
                                                        int64_t after_sequence, int limit);

  // ---- blob references ----
  // The sha256 of every blob a row refers to: model and dataset files,
  // artifacts, checkpoints (a part's result is a checkpoint). One read
  // transaction. What is not in it may be collected (blob_gc.h).
  absl::StatusOr<std::set<std::string>> ReferencedBlobs();

 private:
  Store(std::unique_ptr<sql::Db> db, std::string target);
  // Sends `what` to the listeners of `channel` when the transaction commits.
  absl::Status NotifyLocked(const char* channel, const std::string& what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<v1::Job> LoadJobLocked(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TaskRecord> LoadTaskLocked(const std::string& job_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<PartRecord> LoadPartLocked(const std::string& part_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SavePartLocked(const PartRecord& part) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status SaveJobLocked(const v1::Job& job, const TaskRecord& task, bool artifacts_changed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> AppendEventsLocked(const std::string& job_id,
                                             std::vector<v1::JobEvent>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  const std::unique_ptr<sql::Db> owned_db_;
  sql::Db* const db_ ABSL_GUARDED_BY(mu_);
  const std::string target_;
  const bool shared_;
  const std::string origin_;  // tags this process's notifications, which it ignores
  absl::Mutex listener_mu_;
  std::unique_ptr<sql::Listener> listener_ ABSL_GUARDED_BY(listener_mu_);
};

}  // namespace compressd
