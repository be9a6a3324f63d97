// The CheckpointStore of a leased task: checkpoints go to the server
// (WorkerService.PutCheckpoint / GetCheckpoint), keyed by the task's job, so
// a retry of the job on any worker sees what this attempt stored.
//
// Each call carries the task's lease. A server answer of FAILED_PRECONDITION
// (the lease was lost or the job ended) calls `on_lease_lost` before it is
// returned, so the worker stops the task without reporting a result.
// Thread-safe (WorkerClient is).
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "workers/engine/runtime/checkpoint.h"
#include "workers/worker/server_client.h"

namespace compressd {

class ServerCheckpointStore : public engine::CheckpointStore {
 public:
  // Runs a call, retrying transient errors as the caller sees fit (the
  // worker's WithRetry); empty: one try.
  using Retry = std::function<absl::Status(const std::function<absl::Status()>& call)>;

  ServerCheckpointStore(WorkerClient& client, std::string task_id, std::string lease_token,
                        Retry retry = nullptr, std::function<void()> on_lease_lost = nullptr);

  absl::Status Put(const std::string& name, const std::string& bytes) override;
  absl::StatusOr<std::string> Get(const std::string& name) override;

 private:
  absl::Status Call(const std::function<absl::Status()>& call) const;

  WorkerClient& client_;
  const std::string task_id_;
  const std::string lease_token_;
  const Retry retry_;
  const std::function<void()> on_lease_lost_;
};

}  // namespace compressd
