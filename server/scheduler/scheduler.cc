// Scheduler: lifecycle, worker registry, LeaseTask long-polls and the
// periodic Tick. The lease-bound calls (lease, heartbeat, events, artifacts,
// complete, fail, expiry) are in leases.cc.
#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/util.h"
#include "server/jobs/job_state.h"

namespace compressd {
namespace {

SchedulerOptions WithDefaultClock(SchedulerOptions options) {
  if (!options.clock) options.clock = [] { return NowMs(); };
  return options;
}

v1::LeaseTaskResponse NoTask() { return v1::LeaseTaskResponse(); }

}  // namespace

Scheduler::Scheduler(Store& store, EventBus& bus, ServerMetrics& metrics,
                     SchedulerOptions options)
    : store_(store), bus_(bus), metrics_(metrics), options_(WithDefaultClock(std::move(options))) {}

Scheduler::~Scheduler() { Stop(); }

int64_t Scheduler::Now() const { return options_.clock(); }

void Scheduler::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  thread_ = std::thread(&Scheduler::Run, this);
}

void Scheduler::Stop() {
  std::vector<LeaseCallback> pending;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.serving) {  // ServeWaiters answers it
        ++it;
        continue;
      }
      pending.push_back(std::move(it->second.done));
      it = waiters_.erase(it);
    }
  }
  if (thread_.joinable()) thread_.join();
  for (LeaseCallback& done : pending) done(NoTask());
}

void Scheduler::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(options_.tick_ms))) {
        return;
      }
    }
    Tick();
  }
}

absl::StatusOr<v1::RegisterWorkerResponse> Scheduler::RegisterWorker(
    const v1::RegisterWorkerRequest& req) {
  v1::RegisterWorkerResponse resp;
  resp.set_worker_id(NewId("wkr-"));
  resp.set_heartbeat_interval_ms(options_.heartbeat_interval_ms);
  resp.set_lease_ttl_ms(options_.lease_ttl_ms);
  absl::MutexLock lock(&mu_);
  WorkerInfo& worker = workers_[resp.worker_id()];
  worker.info = req;
  worker.last_seen_ms = Now();
  UpdateWorkerGaugesLocked();
  return resp;
}

absl::Status Scheduler::TouchWorker(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: worker \"", worker_id,
                                            "\" is not registered; call RegisterWorker"));
  }
  it->second.last_seen_ms = Now();
  return absl::OkStatus();
}

void Scheduler::SetWorkerTask(const std::string& worker_id, const std::string& task_id,
                              bool admit) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) {
    if (!admit) return;
    it = workers_.emplace(worker_id, WorkerInfo()).first;
  }
  it->second.task_id = task_id;
  it->second.last_seen_ms = Now();
  UpdateWorkerGaugesLocked();
}

void Scheduler::ReleaseWorker(const std::string& worker_id, const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end() && it->second.task_id == task_id) it->second.task_id.clear();
  UpdateWorkerGaugesLocked();
}

void Scheduler::UpdateWorkerGaugesLocked() {
  int64_t busy = std::count_if(workers_.begin(), workers_.end(),
                               [](const auto& w) { return !w.second.task_id.empty(); });
  metrics_.workers_connected().Set(static_cast<double>(workers_.size()));
  metrics_.workers_busy().Set(static_cast<double>(busy));
}

int64_t Scheduler::LeaseTask(const v1::LeaseTaskRequest& req, LeaseCallback done) {
  if (req.wait_ms() < 0) {
    done(absl::InvalidArgumentError(
        absl::StrCat("wait_ms: must not be negative, got ", req.wait_ms())));
    return 0;
  }
  absl::Status known = TouchWorker(req.worker_id());
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
    absl::StatusOr<std::optional<v1::Task>> leased = TryLease(req.worker_id());
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
        waiters_[handle] = Waiter{req.worker_id(), Now() + wait_ms, std::move(done)};
        return handle;
      }
    }
    done(NoTask());
    return 0;
  }
}

void Scheduler::CancelWait(int64_t handle) {
  LeaseCallback done;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(handle);
    if (it == waiters_.end()) return;
    if (it->second.serving) {
      it->second.cancelled = true;  // ServeWaiters answers it
      return;
    }
    done = std::move(it->second.done);
    waiters_.erase(it);
  }
  done(absl::CancelledError("LeaseTask: the caller went away"));
}

void Scheduler::NotifyWorkAvailable() {
  {
    absl::MutexLock lock(&mu_);
    ++work_generation_;
  }
  ServeWaiters();
}

void Scheduler::ServeWaiters() {
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
    absl::StatusOr<std::optional<v1::Task>> leased = TryLease(worker_id);
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
      if (got_task) ReturnLease(**leased, worker_id);
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

void Scheduler::ExpireWaitersAndWorkers(int64_t now) {
  std::vector<LeaseCallback> timed_out;
  {
    absl::MutexLock lock(&mu_);
    std::set<std::string> waiting;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      Waiter& waiter = it->second;
      if (waiter.serving || waiter.deadline_ms > now) {
        waiting.insert(waiter.worker_id);
        ++it;
        continue;
      }
      auto worker = workers_.find(waiter.worker_id);
      if (worker != workers_.end()) worker->second.last_seen_ms = now;
      timed_out.push_back(std::move(waiter.done));
      it = waiters_.erase(it);
    }
    for (auto it = workers_.begin(); it != workers_.end();) {
      bool silent = now - it->second.last_seen_ms > options_.worker_timeout_ms;
      if (silent && waiting.count(it->first) == 0) {
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    UpdateWorkerGaugesLocked();
  }
  for (LeaseCallback& done : timed_out) done(NoTask());
}

void Scheduler::Tick() {
  int64_t now = Now();
  ExpireLeases(now);
  ExpireWaitersAndWorkers(now);
  // A safety net: hand out work whose notification raced with a waiter.
  ServeWaiters();
}

void Scheduler::RefreshJobMetrics() {
  absl::StatusOr<std::vector<std::pair<v1::JobState, int64_t>>> counts = store_.CountJobsByState();
  if (!counts.ok()) return;
  std::map<v1::JobState, int64_t> by_state = {
      {v1::QUEUED, 0}, {v1::RUNNING, 0}, {v1::SUCCEEDED, 0}, {v1::FAILED, 0}, {v1::CANCELLED, 0}};
  for (const auto& [state, count] : *counts) by_state[state] = count;
  for (const auto& [state, count] : by_state) {
    std::string_view name = JobStateName(state);
    metrics_.jobs_in_state(std::string(name)).Set(static_cast<double>(count));
  }
  metrics_.queue_depth().Set(static_cast<double>(by_state[v1::QUEUED]));
}

}  // namespace compressd
