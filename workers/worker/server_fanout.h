// The Fanout (engine/runtime/fanout.h) of a leased task: parts go to the server
// (WorkerService.SubmitParts), where idle workers lease them; this worker
// claims and computes the ones still queued (ClaimPart) instead of waiting,
// then polls until every part is done (GetParts) and reads the results,
// which are checkpoints of the job. A part whose result an earlier attempt of
// the job already stored is not submitted again.
//
// A FAILED_PRECONDITION from the server (the task's lease is gone) calls
// `on_lease_lost`, like ServerCheckpointStore. Not thread-safe (one task).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "workers/engine/runtime/checkpoint.h"
#include "workers/engine/runtime/fanout.h"
#include "workers/worker/server_client.h"

namespace compressd {

class ServerFanout : public engine::Fanout {
 public:
  using Retry = std::function<absl::Status(const std::function<absl::Status()>& call)>;

  // `results`: the task's checkpoint store (where parts' results are read
  // and where this worker stores the results of parts it computes).
  ServerFanout(WorkerClient& client, std::string task_id, std::string lease_token,
               engine::CheckpointStore& results, Retry retry = nullptr,
               std::function<void()> on_lease_lost = nullptr, int64_t poll_ms = 100);

  absl::StatusOr<std::vector<std::string>> Run(const std::vector<engine::WorkPart>& parts,
                                               const LocalFn& local,
                                               const engine::CancelToken& cancel) override;
  // The server's count of live workers at the last call (asked once if none yet).
  int workers() override;

  // Parts this worker computed / found computed elsewhere / reused from an
  // earlier attempt, over every Run.
  struct Stats {
    int64_t local = 0, remote = 0, reused = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  // One Run's parts: their results so far, by position.
  struct Batch {
    std::vector<std::string> results;
    std::vector<bool> have;
    std::map<std::string, size_t> index;  // name -> position
  };
  absl::Status Call(const std::function<absl::Status()>& call);
  // Takes results an earlier attempt stored; submits the other parts (none:
  // an empty request).
  absl::StatusOr<v1::SubmitPartsRequest> SubmitMissing(const std::vector<engine::WorkPart>& parts,
                                                       Batch* batch);
  // Claims one queued part and computes it here; false when none was queued.
  absl::StatusOr<bool> ComputeOneHere(const LocalFn& local, Batch* batch);
  // True once every part of `poll` is DONE; ABORTED for a FAILED part.
  absl::StatusOr<bool> AllDone(const v1::GetPartsRequest& poll);

  WorkerClient& client_;
  const std::string task_id_;
  const std::string lease_token_;
  engine::CheckpointStore& results_;
  const Retry retry_;
  const std::function<void()> on_lease_lost_;
  const int64_t poll_ms_;
  int workers_ = 0;
  Stats stats_;
};

}  // namespace compressd
