// ServerWriteReactor for WatchJob: streams a job's persisted events with
// sequence > after_sequence, then live ones, and finishes OK once the job is
// terminal and every event was sent (NOT_FOUND for an unknown job).
//
// Events are read from the Store in batches and written one at a time; each
// completed write drives the next. When caught up the reactor idles: the
// EventBus callback (which must not block) only arms a zero-delay grpc::Alarm,
// and the alarm's callback, on a gRPC thread, reads the new events. The bus
// subscription is taken before the first read, so no event can slip between
// "caught up" and "subscribed", and dropped in OnDone (after which the bus
// guarantees the callback is not running).
//
// Thread-safe: reactions, bus callbacks and alarms may run concurrently;
// state is guarded by mu_. The reactor deletes itself once gRPC called
// OnDone and no alarm is pending.
#pragma once

#include <grpcpp/alarm.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "compressd/v1/compressd.pb.h"
#include "server/core/event_bus.h"
#include "server/jobs/job_service.h"

namespace compressd {

class WatchJobReactor : public grpc::ServerWriteReactor<v1::JobEvent> {
 public:
  // Starts streaming at once; the returned object manages its own lifetime.
  // `hold` (may be null) is kept until the reactor is gone (stream_limiter.h).
  static WatchJobReactor* Start(JobService& jobs, EventBus& bus, const v1::WatchJobRequest& req,
                                std::shared_ptr<void> hold = nullptr);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  WatchJobReactor(JobService& jobs, EventBus& bus, std::string job_id, int64_t after_sequence);
  void Begin();
  void OnPublished();
  void OnAlarm();

  // Sends the next event, waits, or finishes; called with nothing in flight.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Refills pending_; false if the stream was finished instead.
  bool RefillLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr int kBatch = 256;

  JobService& jobs_;
  EventBus& bus_;
  const std::string job_id_;
  int64_t subscription_ = 0;  // written in Begin, read in OnDone
  std::shared_ptr<void> hold_;

  absl::Mutex mu_;
  int64_t last_sent_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::JobEvent> pending_ ABSL_GUARDED_BY(mu_);
  v1::JobEvent current_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<grpc::Alarm> alarm_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compressd
