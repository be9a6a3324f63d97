// Checkpoints of running jobs, behind WorkerService.PutCheckpoint and
// GetCheckpoint: named blobs a long job writes after each unit of work so a
// retried task (a new attempt, maybe on another worker) resumes from there.
//
// - Keyed by (job, name), not by attempt: every attempt of a job sees what
//   earlier attempts stored. A put replaces the checkpoint of that name.
// - Every call carries the task's lease; one that is no longer current (or a
//   job that is not RUNNING) gets FAILED_PRECONDITION, like every lease-bound
//   call (CheckLeaseHeld, server/store/lease_check.h). The lease is checked
//   again in the transaction that records a put, so a stale worker never
//   writes into a newer attempt's state.
// - The content lives in the content-addressed BlobStore, the mapping in the
//   Store's checkpoints table. Names are portable relative paths
//   (ValidatePortableRelativePath); sizes are capped at kMaxCheckpointBytes
//   (RESOURCE_EXHAUSTED); a digest mismatch is INVALID_ARGUMENT (from the
//   blob writer, as for artifacts).
// - When the job reaches a terminal state the rows are deleted (Store::UpdateJob).
// - Except names under "shared/" (kSharedCheckpointPrefix): those belong to the
//   job's model (SharedCheckpointOwner), every job of that model reads and
//   writes the same ones under its own lease, and they stay until the model
//   is deleted. The EvoPress levels database lives there
//   (compress-worker: "shared/levels/..."), so a later search on the same
//   model and calibration set reuses the layers an earlier job compressed;
//   the database's own keys carry the model's and calibration's digest.
//   A deleted row's blob is deleted later by the blob garbage collector
//   (server/store/blob_gc.h) unless another row refers to the same content.
//
// A put is three steps, so that the RPC can stream the content between them:
// CheckPut (before any byte is accepted), the caller commits the blob, then
// RecordPut. Thread-safe.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compressd/v1/worker.pb.h"
#include "server/store/blob_store.h"
#include "server/store/store.h"

namespace compressd {

// The largest checkpoint: a calibrated job's per-block checkpoint holds the
// block's compressed weights in float32 plus their codes (about 5 bytes a
// weight): ~1.1 GB for a Llama-3.1-8B block, ~4.3 GB for a 70B one, ~16 GB
// for a 405B one. The content is streamed into the blob store, never held.
inline constexpr uint64_t kMaxCheckpointBytes = uint64_t{32} << 30;  // 32 GiB
inline constexpr char kSharedCheckpointPrefix[] = "shared/";

// Whether checkpoint `name` is one of the model's shared ones.
bool IsSharedCheckpoint(const std::string& name);

class CheckpointService {
 public:
  CheckpointService(Store& store, const BlobStore& blobs) : store_(store), blobs_(blobs) {}

  // The header of a PutCheckpoint: the lease (FAILED_PRECONDITION), the name
  // and the sha256 format (INVALID_ARGUMENT), the size (RESOURCE_EXHAUSTED
  // above kMaxCheckpointBytes). NOT_FOUND for an unknown task.
  absl::Status CheckPut(const v1::PutCheckpointHeader& header) const;
  // Records the committed blob header.sha256 as checkpoint header.name of
  // the task's job, replacing an earlier one, if the lease is still current.
  // FAILED_PRECONDITION if the blob is not stored with header.size bytes.
  absl::StatusOr<v1::PutCheckpointResponse> RecordPut(const v1::PutCheckpointHeader& header);
  // The checkpoint a GetCheckpoint names, after the lease check; NOT_FOUND if
  // the job has none of that name, OUT_OF_RANGE for an offset past its end.
  absl::StatusOr<CheckpointRecord> Find(const v1::GetCheckpointRequest& request) const;

 private:
  // The job of `task_id` if (task_id, lease_token) is its current lease.
  absl::StatusOr<v1::Job> LeasedJob(const std::string& task_id,
                                    const std::string& lease_token) const;
  // The owner key of checkpoint `name` of `job` (CheckpointRecord::job_id).
  static std::string Owner(const v1::Job& job, const std::string& name);

  Store& store_;
  const BlobStore& blobs_;
};

}  // namespace compressd
