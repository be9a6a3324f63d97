#include "server/scheduler/lease_waiters.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace compressd {
namespace {

v1::LeaseTaskResponse NoTask() { return v1::LeaseTaskResponse(); }

}  // namespace

LeaseWaiters::LeaseWaiters(WorkerRegistry& workers, TaskSource& source, SchedulerOptions options)
    : workers_(workers), source_(source), options_(std::move(options)) {}

int64_t LeaseWaiters::LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done) {
  if (req.wait_ms() < 0) {
    done(absl::InvalidArgumentError(
        absl::StrCat("wait_ms: must not be negative, got ", req.wait_ms())));
    return 0;
  }
  absl::Status known = workers_.Touch(req.worker_id());
  if (!known.ok()) {
    done(known);
    return 0;
  }
  const int64_t wait_ms = std::min(req.wait_ms(), options_.max_wait_ms);
  uint64_t generation;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    generation = work_generation_;
    stopping = stopping_;
  }
  if (stopping) {  // draining: hand out no new work
    done(NoTask());
    return 0;
  }
  while (true) {
    absl::StatusOr<std::optional<v1::Task>> leased = source_.TryLease(req.worker_id());
    if (!leased.ok()) {
      done(leased.status());
      return 0;
    }
    if (leased->has_value()) {
      v1::LeaseTaskResponse resp;
      *resp.mutable_task() = std::move(**leased);
      done(std::move(resp));
      return 0;
    }
    {
      absl::MutexLock lock(&mu_);
      if (work_generation_ != generation) {  // work arrived meanwhile: try again
        generation = work_generation_;
        continue;
      }
      if (!stopping_ && wait_ms > 0) {
        int64_t handle = next_handle_++;
        waiters_[handle] = Waiter{req.worker_id(), options_.Now() + wait_ms, std::move(done)};
        return handle;
      }
    }
    done(NoTask());
    return 0;
  }
}

void LeaseWaiters::CancelWait(int64_t handle) {
  LeaseCallback done;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(handle);
    if (it == waiters_.end()) return;
    if (it->second.serving) {
      it->second.cancelled = true;  // Serve answers it
      return;
    }
    done = std::move(it->second.done);
    waiters_.erase(it);
  }
  done(absl::CancelledError("LeaseTask: the caller went away"));
}

void LeaseWaiters::NotifyWorkAvailable() {
  {
    absl::MutexLock lock(&mu_);
    ++work_generation_;
  }
  Serve();
}

void LeaseWaiters::Serve() {
  while (true) {
    int64_t handle = 0;
    std::string worker_id;
    {
      absl::MutexLock lock(&mu_);
      auto it = std::find_if(waiters_.begin(), waiters_.end(),
                             [](const auto& w) { return !w.second.serving; });
      if (it == waiters_.end()) return;
      it->second.serving = true;
      handle = it->first;
      worker_id = it->second.worker_id;
    }
    absl::StatusOr<std::optional<v1::Task>> leased = source_.TryLease(worker_id);
    const bool got_task = leased.ok() && leased->has_value();
    LeaseCallback done;
    bool cancelled = false;
    {
      absl::MutexLock lock(&mu_);
      auto it = waiters_.find(handle);  // only the serving thread erases a serving waiter
      Waiter& waiter = it->second;
      if (leased.ok() && !got_task && !waiter.cancelled && !stopping_) {
        waiter.serving = false;  // nothing queued: keep waiting
        return;
      }
      done = std::move(waiter.done);
      cancelled = waiter.cancelled;
      waiters_.erase(it);
    }
    if (cancelled) {
      if (got_task) {
        source_.ReturnLease(**leased, worker_id);
        absl::MutexLock lock(&mu_);
        ++work_generation_;
      }
      done(absl::CancelledError("LeaseTask: the caller went away"));
      continue;
    }
    if (!leased.ok()) {
      done(leased.status());
      return;
    }
    v1::LeaseTaskResponse resp;
    if (got_task) *resp.mutable_task() = std::move(**leased);
    done(std::move(resp));
    if (!got_task) return;  // stopping
  }
}

void LeaseWaiters::Expire(int64_t now) {
  std::vector<LeaseCallback> timed_out;
  std::vector<std::string> heard;
  std::set<std::string> waiting;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Waiter& waiter = it->second;
      if (waiter.serving || waiter.deadline_ms > now) {
        waiting.insert(waiter.worker_id);
        ++it;
        continue;
      }
      heard.push_back(waiter.worker_id);
      timed_out.push_back(std::move(waiter.done));
      it = waiters_.erase(it);
    }
  }
  workers_.ExpireSilent(now, heard, waiting);
  for (LeaseCallback& done : timed_out) done(NoTask());
}

std::vector<LeaseWaiters::LeaseCallback> LeaseWaiters::Stop() {
  std::vector<LeaseCallback> pending;
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->second.serving) {  // Serve answers it
      ++it;
      continue;
    }
    pending.push_back(std::move(it->second.done));
    it = waiters_.erase(it);
  }
  return pending;
}

}  // namespace compressd
