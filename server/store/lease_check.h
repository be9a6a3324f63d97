// Whether a lease is still current: the rule every call a worker makes about
// a task or part applies to the Store's lease records (TaskRecord,
// PartRecord), usually inside a Store transaction through a `check`
// callback (Store::PutCheckpoint, SubmitParts, LeaseQueuedPart). The
// scheduler (scheduler/) and CheckpointService (jobs/) both apply it, so it
// lives here, beside the records, and neither of them includes the other.
// Who gets a lease and when it is renewed or expires is the scheduler's.
// Plain functions; thread-safe.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "compressd/v1/compressd.pb.h"
#include "server/store/store.h"

namespace compressd {

// FAILED_PRECONDITION: the lease on `task` is no longer current (it expired,
// was re-leased or the job ended).
absl::Status StaleLease(const TaskRecord& task);

// FAILED_PRECONDITION unless `lease_token` is the current lease of `task` and
// `job` is RUNNING.
absl::Status CheckLeaseHeld(const v1::Job& job, const TaskRecord& task,
                            const std::string& lease_token);

// A lease-bound call naming a part that no longer exists (its job left
// RUNNING): the lease has ended, FAILED_PRECONDITION like any lost lease.
// `st` is the NOT_FOUND of Store::UpdatePart or of loading the part; any
// other status is returned unchanged.
absl::Status PartGone(const absl::Status& st, const std::string& part_id);

}  // namespace compressd
