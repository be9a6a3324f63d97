#include "workers/worker/server_fanout.h"

#include <chrono>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/utf8.h"

namespace compressd {

ServerFanout::ServerFanout(WorkerClient& client, std::string task_id, std::string lease_token,
                           engine::CheckpointStore& results, Retry retry,
                           std::function<void()> on_lease_lost, int64_t poll_ms)
    : client_(client), task_id_(std::move(task_id)), lease_token_(std::move(lease_token)),
      results_(results), retry_(std::move(retry)), on_lease_lost_(std::move(on_lease_lost)),
      poll_ms_(poll_ms) {}

absl::Status ServerFanout::Call(const std::function<absl::Status()>& call) {
  absl::Status st = retry_ ? retry_(call) : call();
  if (st.code() == absl::StatusCode::kFailedPrecondition && on_lease_lost_) on_lease_lost_();
  return st;
}

int ServerFanout::workers() {
  if (workers_ == 0) {
    v1::SubmitPartsRequest req;
    req.set_task_id(task_id_);
    req.set_lease_token(lease_token_);
    absl::Status st = Call([&]() -> absl::Status {
      ASSIGN_OR_RETURN(v1::SubmitPartsResponse resp, client_.SubmitParts(req));
      workers_ = resp.workers();
      return absl::OkStatus();
    });
    if (!st.ok()) return 1;  // the next Run reports the error
  }
  return std::max(1, workers_);
}

absl::StatusOr<v1::SubmitPartsRequest> ServerFanout::SubmitMissing(
    const std::vector<engine::WorkPart>& parts, Batch* batch) {
  v1::SubmitPartsRequest submit;
  submit.set_task_id(task_id_);
  submit.set_lease_token(lease_token_);
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string result_name = "parts/" + parts[i].name;
    if (!batch->index.emplace(parts[i].name, i).second) {
      return absl::InvalidArgumentError(absl::StrCat("part ", parts[i].name, " listed twice"));
    }
    absl::StatusOr<std::string> stored = results_.Get(result_name);
    if (stored.ok()) {  // an earlier attempt computed it
      batch->results[i] = *std::move(stored);
      batch->have[i] = true;
      ++stats_.reused;
      continue;
    }
    if (!absl::IsNotFound(stored.status())) return stored.status();
    v1::Part* p = submit.add_parts();
    p->set_name(parts[i].name);
    p->set_payload(parts[i].payload);
    p->set_result(result_name);
  }
  if (submit.parts_size() == 0) return submit;
  RETURN_IF_ERROR(Call([&]() -> absl::Status {
    ASSIGN_OR_RETURN(v1::SubmitPartsResponse resp, client_.SubmitParts(submit));
    workers_ = resp.workers();
    return absl::OkStatus();
  }));
  return submit;
}

absl::StatusOr<bool> ServerFanout::ComputeOneHere(const LocalFn& local, Batch* batch) {
  v1::ClaimPartRequest claim;
  claim.set_task_id(task_id_);
  claim.set_lease_token(lease_token_);
  v1::ClaimPartResponse claimed;
  RETURN_IF_ERROR(Call([&]() -> absl::Status {
    ASSIGN_OR_RETURN(claimed, client_.ClaimPart(claim));
    return absl::OkStatus();
  }));
  if (!claimed.has_part()) return false;
  engine::WorkPart part{claimed.part().name(), claimed.part().payload()};
  absl::StatusOr<std::string> r = local(part);
  if (!r.ok()) {
    v1::FailTaskRequest fail;
    fail.set_task_id(claimed.part_task_id());
    fail.set_lease_token(claimed.part_lease_token());
    fail.set_error(ToValidUtf8(r.status().ToString(), kMaxErrorTextBytes));
    fail.set_retryable(false);
    (void)Call([&] { return client_.FailTask(fail); });
    return r.status();
  }
  RETURN_IF_ERROR(results_.Put(claimed.part().result(), *r));
  v1::CompleteTaskRequest done;
  done.set_task_id(claimed.part_task_id());
  done.set_lease_token(claimed.part_lease_token());
  RETURN_IF_ERROR(Call([&] { return client_.CompleteTask(done); }));
  auto it = batch->index.find(claimed.part().name());
  if (it != batch->index.end()) {
    batch->results[it->second] = *std::move(r);
    batch->have[it->second] = true;
  }
  ++stats_.local;
  return true;
}

absl::StatusOr<bool> ServerFanout::AllDone(const v1::GetPartsRequest& poll) {
  v1::GetPartsResponse states;
  RETURN_IF_ERROR(Call([&]() -> absl::Status {
    ASSIGN_OR_RETURN(states, client_.GetParts(poll));
    return absl::OkStatus();
  }));
  bool all_done = true;
  for (const v1::PartStatus& s : states.parts()) {
    if (s.state() == v1::PartStatus::FAILED) {
      return absl::AbortedError(absl::StrCat("part ", s.name(), " failed ", s.failures(),
                                             " times; last error: ", s.error()));
    }
    all_done = all_done && s.state() == v1::PartStatus::DONE;
  }
  return all_done;
}

absl::StatusOr<std::vector<std::string>> ServerFanout::Run(const std::vector<engine::WorkPart>& parts,
                                                           const LocalFn& local,
                                                           const engine::CancelToken& cancel) {
  Batch batch{std::vector<std::string>(parts.size()), std::vector<bool>(parts.size(), false), {}};
  ASSIGN_OR_RETURN(const v1::SubmitPartsRequest submit, SubmitMissing(parts, &batch));
  if (submit.parts_size() == 0) return batch.results;
  v1::GetPartsRequest poll;
  poll.set_task_id(task_id_);
  poll.set_lease_token(lease_token_);
  for (const v1::Part& p : submit.parts()) poll.add_names(p.name());
  while (true) {
    if (cancel.cancelled()) return absl::CancelledError("job cancelled");
    // Compute what nobody has taken.
    ASSIGN_OR_RETURN(const bool computed, ComputeOneHere(local, &batch));
    if (computed) continue;
    ASSIGN_OR_RETURN(const bool done, AllDone(poll));
    if (done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms_));
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (batch.have[i]) continue;
    ASSIGN_OR_RETURN(batch.results[i], results_.Get("parts/" + parts[i].name));
    ++stats_.remote;
  }
  return batch.results;
}

}  // namespace compressd
