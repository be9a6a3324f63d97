#include "server/rpc/watch_job_reactor.h"

#include <chrono>
#include <utility>

#include "common/grpc_status.h"
#include "server/core/job_state.h"

namespace compressd {

WatchJobReactor* WatchJobReactor::Start(JobService& jobs, EventBus& bus,
                                        const v1::WatchJobRequest& req,
                                        std::shared_ptr<void> hold) {
  auto* reactor = new WatchJobReactor(jobs, bus, req.job_id(), req.after_sequence());
  reactor->hold_ = std::move(hold);
  reactor->Begin();
  return reactor;
}

WatchJobReactor::WatchJobReactor(JobService& jobs, EventBus& bus, std::string job_id,
                                 int64_t after_sequence)
    : jobs_(jobs), bus_(bus), job_id_(std::move(job_id)), last_sent_(after_sequence) {}

void WatchJobReactor::Begin() {
  // Subscribe before the first read, and outside mu_: the bus holds its own
  // lock while running callbacks, which take mu_.
  subscription_ = bus_.Subscribe(job_id_, [this](int64_t /*last_sequence*/) { OnPublished(); });

  absl::MutexLock lock(&mu_);
  absl::StatusOr<v1::Job> job = jobs_.Get(job_id_);
  if (!job.ok()) {
    FinishLocked(ToGrpcStatus(job.status()));
    return;
  }
  PumpLocked();
}

void WatchJobReactor::OnPublished() {
  absl::MutexLock lock(&mu_);
  if (finished_ || writing_ || alarm_pending_) {
    return;  // the next pump reads anyway
  }
  alarm_pending_ = true;
  alarm_ = std::make_unique<grpc::Alarm>();
  alarm_->Set(std::chrono::system_clock::now(), [this](bool /*fired*/) { OnAlarm(); });
}

void WatchJobReactor::OnAlarm() {
  bool destroy = false;
  {
    absl::MutexLock lock(&mu_);
    alarm_pending_ = false;
    if (done_) {
      destroy = true;
    } else if (!writing_ && !finished_) {
      PumpLocked();
    }
  }
  if (destroy) {
    delete this;
  }
}

void WatchJobReactor::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok || cancelled_) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
    return;
  }
  PumpLocked();
}

void WatchJobReactor::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  // A write in flight completes (ok=false) and finishes from OnWriteDone.
  if (!writing_) {
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }
}

void WatchJobReactor::OnDone() {
  bus_.Unsubscribe(subscription_);  // outside mu_, see Begin()
  bool destroy = false;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    destroy = !alarm_pending_;
  }
  if (destroy) {
    delete this;
  }
}

void WatchJobReactor::PumpLocked() {
  if (finished_ || writing_) {
    return;
  }
  if (pending_.empty() && !RefillLocked()) {
    return;
  }
  if (pending_.empty()) {
    if (bus_.closed()) {  // draining: the client reconnects, to another replica if there is one
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "compressd is shutting down; watch again with after_sequence " +
                                    std::to_string(last_sent_)));
    }
    return;  // caught up on a live job: wait for the bus
  }
  current_ = std::move(pending_.front());
  pending_.pop_front();
  last_sent_ = current_.sequence();
  writing_ = true;
  StartWrite(&current_);
}

bool WatchJobReactor::RefillLocked() {
  absl::StatusOr<std::vector<v1::JobEvent>> batch = jobs_.ReadEvents(job_id_, last_sent_, kBatch);
  if (batch.ok() && batch->empty()) {
    // Caught up. A terminal job writes its last event in the same transaction
    // as the state change, so read once more after seeing the state.
    absl::StatusOr<v1::Job> job = jobs_.Get(job_id_);
    if (!job.ok()) {
      FinishLocked(ToGrpcStatus(job.status()));
      return false;
    }
    if (!IsTerminal(job->state())) {
      return true;
    }
    batch = jobs_.ReadEvents(job_id_, last_sent_, kBatch);
    if (batch.ok() && batch->empty()) {
      FinishLocked(grpc::Status::OK);
      return false;
    }
  }
  if (!batch.ok()) {
    FinishLocked(ToGrpcStatus(batch.status()));
    return false;
  }
  for (v1::JobEvent& event : *batch) {
    pending_.push_back(std::move(event));
  }
  return true;
}

void WatchJobReactor::FinishLocked(const grpc::Status& status) {
  if (finished_) {
    return;
  }
  finished_ = true;
  Finish(status);
}

}  // namespace compressd
