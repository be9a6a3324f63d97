#include "server/scheduler/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/server/test_util.h"

namespace compressd {
namespace {

using ::compressd::testing::JobsEnv;
using ::compressd::testing::LeaseResult;
using ::testing::HasSubstr;

v1::Progress MakeProgress(const std::string& stage, int current, int total) {
  v1::Progress p;
  p.set_stage(stage);
  p.set_current(current);
  p.set_total(total);
  return p;
}

class SchedulerTest : public ::testing::Test {
 protected:
  v1::HeartbeatRequest Beat(const std::string& worker, const v1::Task& task) {
    v1::HeartbeatRequest req;
    req.set_worker_id(worker);
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    return req;
  }
  absl::Status Complete(const v1::Task& task, const std::string& summary = "{}") {
    v1::CompleteTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_summary_json(summary);
    return env_.scheduler.CompleteTask(req);
  }
  absl::Status Fail(const v1::Task& task, const std::string& error, bool retryable,
                    bool release = false) {
    v1::FailTaskRequest req;
    req.set_task_id(task.task_id());
    req.set_lease_token(task.lease_token());
    req.set_error(error);
    req.set_retryable(retryable);
    req.set_release(release);
    return env_.scheduler.FailTask(req);
  }
  v1::Job Job(const std::string& id) { return *env_.store->GetJob(id); }
  std::vector<v1::JobEvent> Events(const std::string& id) {
    return *env_.store->ReadEvents(id, 0, 0);
  }

  JobsEnv env_;
};

TEST_F(SchedulerTest, LeaseHeartbeatComplete) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(task->job_id(), job.id());
  EXPECT_EQ(task->attempt(), 1);
  EXPECT_EQ(task->lease_token().rfind("lease-", 0), 0u);
  EXPECT_EQ(task->model().id(), "mdl-1");
  EXPECT_EQ(task->recipe().stages(0).magnitude().sparsity(), 0.5);
  EXPECT_EQ(task->lease_ttl_ms(), JobsEnv::kTtl);
  v1::Job running = Job(job.id());
  EXPECT_EQ(running.state(), v1::RUNNING);
  EXPECT_EQ(running.attempts(), 1);
  EXPECT_EQ(running.start_time_ms(), env_.now.load());
  EXPECT_THAT(Events(job.id()).back().state().reason(),
              HasSubstr("leased by worker " + w + ", attempt 1 of 3"));
  EXPECT_EQ(env_.metrics.task_attempts().Value(), 1);
  EXPECT_EQ(env_.metrics.workers_busy().Value(), 1);
  EXPECT_EQ(env_.metrics.workers_connected().Value(), 1);
  EXPECT_EQ(env_.metrics.queue_depth().Value(), 0);

  env_.now += 1000;
  v1::HeartbeatRequest beat = Beat(w, *task);
  *beat.mutable_progress() = MakeProgress("prune", 1, 4);
  auto hb = env_.scheduler.Heartbeat(beat);
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_FALSE(hb->cancel());
  EXPECT_EQ(hb->lease_expire_ms(), env_.now.load() + JobsEnv::kTtl);
  EXPECT_EQ(Job(job.id()).progress().current(), 1);
  size_t events_after_first = Events(job.id()).size();
  EXPECT_TRUE(Events(job.id()).back().has_progress());
  ASSERT_TRUE(env_.scheduler.Heartbeat(beat).ok());  // unchanged progress: no event
  EXPECT_EQ(Events(job.id()).size(), events_after_first);

  v1::UploadArtifactHeader art;
  art.set_task_id(task->task_id());
  art.set_lease_token(task->lease_token());
  art.set_path("model.safetensors");
  art.set_size(3);
  art.set_sha256(Sha256Hex("abc"));
  auto artifact = env_.scheduler.AddArtifact(art);
  ASSERT_TRUE(artifact.ok()) << artifact.status();
  EXPECT_EQ(artifact->job_id(), job.id());
  ASSERT_TRUE(env_.scheduler.CheckLease(task->task_id(), task->lease_token()).ok());

  ASSERT_TRUE(Complete(*task, R"({"sparsity": 0.5})").ok());
  v1::Job done = Job(job.id());
  EXPECT_EQ(done.state(), v1::SUCCEEDED);
  EXPECT_EQ(done.summary_json(), R"({"sparsity": 0.5})");
  EXPECT_EQ(done.end_time_ms(), env_.now.load());
  ASSERT_EQ(done.artifacts_size(), 1);
  EXPECT_EQ(done.artifacts(0).id(), artifact->id());
  EXPECT_EQ(env_.metrics.workers_busy().Value(), 0);
  EXPECT_EQ(env_.metrics.jobs_in_state("SUCCEEDED").Value(), 1);
  // The lease ended with the job.
  EXPECT_EQ(env_.scheduler.Heartbeat(beat).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Complete(*task).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SchedulerTest, EmptyQueueAndUnknownWorker) {
  auto none = env_.Lease(env_.Worker());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->task_id().empty());
  EXPECT_EQ(env_.Lease("wkr-unknown").status().code(), absl::StatusCode::kNotFound);
  v1::HeartbeatRequest idle;
  idle.set_worker_id("wkr-unknown");
  EXPECT_EQ(env_.scheduler.Heartbeat(idle).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, ExpiredLeaseRequeuesThenFailsAfterMaxAttempts) {
  std::string w = env_.Worker("w1");
  v1::Job job = env_.Submit(/*max_attempts=*/2);
  auto first = env_.Lease(w);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->attempt(), 1);

  env_.now += JobsEnv::kTtl - 1;
  env_.scheduler.Tick();
  EXPECT_EQ(env_.State(job.id()), v1::RUNNING);  // not yet
  env_.now += 1;
  env_.scheduler.Tick();
  EXPECT_EQ(env_.State(job.id()), v1::QUEUED);
  EXPECT_THAT(Events(job.id()).back().state().reason(), HasSubstr("lease expired"));
  EXPECT_EQ(env_.metrics.workers_busy().Value(), 0);
  EXPECT_EQ(env_.metrics.queue_depth().Value(), 1);

  auto second = env_.Lease(w);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->attempt(), 2);
  EXPECT_EQ(second->task_id(), first->task_id());
  EXPECT_NE(second->lease_token(), first->lease_token());
  env_.now += JobsEnv::kTtl;
  env_.scheduler.Tick();
  v1::Job failed = Job(job.id());
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_EQ(failed.attempts(), 2);
  EXPECT_EQ(failed.error(),
            "lease expired after 2 attempts: worker " + w + " stopped heartbeating");
  EXPECT_EQ(env_.metrics.task_attempts().Value(), 2);
}

TEST_F(SchedulerTest, HeartbeatKeepsTheLeaseAlive) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  for (int i = 0; i < 3; ++i) {
    env_.now += JobsEnv::kTtl - 1;
    ASSERT_TRUE(env_.scheduler.Heartbeat(Beat(w, *task)).ok());
    env_.scheduler.Tick();
    EXPECT_EQ(env_.State(job.id()), v1::RUNNING);
  }
}

TEST_F(SchedulerTest, StaleLeaseIsFailedPrecondition) {
  std::string w1 = env_.Worker("w1");
  std::string w2 = env_.Worker("w2");
  v1::Job job = env_.Submit();
  auto old_task = env_.Lease(w1);
  ASSERT_TRUE(old_task.ok());
  env_.now += JobsEnv::kTtl;
  env_.scheduler.Tick();
  auto new_task = env_.Lease(w2);
  ASSERT_TRUE(new_task.ok());
  ASSERT_EQ(new_task->job_id(), job.id());

  // Every call on the lost lease is refused and changes nothing.
  EXPECT_EQ(env_.scheduler.Heartbeat(Beat(w1, *old_task)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::ReportEventsRequest report;
  report.set_task_id(old_task->task_id());
  report.set_lease_token(old_task->lease_token());
  report.add_events()->mutable_log()->set_message("stale");
  EXPECT_EQ(env_.scheduler.ReportEvents(report).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Complete(*old_task).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Fail(*old_task, "x", false).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env_.scheduler.CheckLease(old_task->task_id(), old_task->lease_token()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(env_.State(job.id()), v1::RUNNING);

  ASSERT_TRUE(Complete(*new_task).ok());
  EXPECT_EQ(env_.State(job.id()), v1::SUCCEEDED);
}

TEST_F(SchedulerTest, CancelWhileRunningIsSeenOnHeartbeat) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  auto cancelled = env_.jobs.Cancel(job.id());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->state(), v1::CANCELLED);
  EXPECT_EQ(Events(job.id()).back().state().reason(), "cancelled by user");

  auto hb = env_.scheduler.Heartbeat(Beat(w, *task));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_TRUE(hb->cancel());
  EXPECT_EQ(env_.metrics.workers_busy().Value(), 0);
  EXPECT_EQ(Complete(*task).code(), absl::StatusCode::kFailedPrecondition);
  env_.now += JobsEnv::kTtl;
  env_.scheduler.Tick();  // the leftover lease just ends
  EXPECT_EQ(env_.State(job.id()), v1::CANCELLED);
  EXPECT_EQ(Job(job.id()).error(), "cancelled by user");
}

TEST_F(SchedulerTest, FailTaskRetriesOnlyRetryableErrors) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  ASSERT_TRUE(Fail(*task, "out of memory", /*retryable=*/true).ok());
  EXPECT_EQ(env_.State(job.id()), v1::QUEUED);
  EXPECT_EQ(Events(job.id()).back().state().reason(), "out of memory");

  task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->attempt(), 2);
  ASSERT_TRUE(Fail(*task, "tensor model.embed_tokens: bad shape", /*retryable=*/false).ok());
  v1::Job failed = Job(job.id());
  EXPECT_EQ(failed.state(), v1::FAILED);
  EXPECT_EQ(failed.error(), "tensor model.embed_tokens: bad shape");
}

// A stopping worker hands its lease back: the job is queued again at once and
// the attempt does not count, however often it happens (rolling restarts).
TEST_F(SchedulerTest, HandedBackLeaseRequeuesWithoutCountingTheAttempt) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  for (int i = 0; i < 5; ++i) {
    auto task = env_.Lease(w);
    ASSERT_TRUE(task.ok());
    EXPECT_EQ(task->attempt(), 1);
    ASSERT_TRUE(Fail(*task, "the worker is shutting down", /*retryable=*/false,
                     /*release=*/true)
                    .ok());
    EXPECT_EQ(env_.State(job.id()), v1::QUEUED);
    EXPECT_THAT(Events(job.id()).back().state().reason(), HasSubstr("lease handed back by worker"));
    // The lease is gone: a second hand-back of the same lease is stale.
    EXPECT_EQ(Fail(*task, "again", false, true).code(), absl::StatusCode::kFailedPrecondition);
  }
  EXPECT_EQ(Job(job.id()).attempts(), 0);
}

// A worker that refuses a job as larger than its memory hands it to the
// queue with the estimate: the attempt does not count, the job waits with
// the reason in Job.waiting_reason, smaller workers skip it (and lease the
// jobs behind it), and a worker registered with enough memory leases it.
TEST_F(SchedulerTest, AJobTooLargeForAWorkerWaitsForOneWithEnoughMemory) {
  const uint64_t gib = uint64_t{1} << 30;
  const std::string small = env_.Worker("small", 8 * gib);
  v1::Job big = env_.Submit();
  v1::Job next = env_.Submit();
  auto task = env_.Lease(small);
  ASSERT_TRUE(task.ok());
  ASSERT_EQ(task->job_id(), big.id());
  v1::FailTaskRequest refuse;
  refuse.set_task_id(task->task_id());
  refuse.set_lease_token(task->lease_token());
  refuse.set_error("RESOURCE_EXHAUSTED: this job needs an estimated 30.00 GiB of memory");
  refuse.set_retryable(true);
  refuse.set_memory_needed_bytes(30 * gib);
  ASSERT_TRUE(env_.scheduler.FailTask(refuse).ok());
  v1::Job waiting = Job(big.id());
  EXPECT_EQ(waiting.state(), v1::QUEUED);
  EXPECT_EQ(waiting.attempts(), 0);
  EXPECT_EQ(waiting.memory_needed_bytes(), 30 * gib);
  EXPECT_THAT(waiting.waiting_reason(), HasSubstr("needs an estimated 30.00 GiB of memory"));
  EXPECT_THAT(waiting.waiting_reason(), HasSubstr(small));
  // The small worker gets the job behind it, then nothing.
  auto second = env_.Lease(small);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->job_id(), next.id());
  auto none = env_.Lease(small);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->task_id().empty());
  const std::string unknown = env_.Worker("unknown-memory");  // e.g. re-admitted after a restart
  EXPECT_TRUE(env_.Lease(unknown)->task_id().empty());
  // It says its memory with its next LeaseTask, and leases the job; the
  // reason is cleared.
  v1::LeaseTaskRequest lease;
  lease.set_worker_id(unknown);
  lease.set_memory_bytes(64 * gib);
  absl::StatusOr<v1::LeaseTaskResponse> leased = absl::InternalError("no answer");
  env_.scheduler.LeaseTask(lease, [&](auto r) { leased = std::move(r); });
  ASSERT_TRUE(leased.ok()) << leased.status();
  absl::StatusOr<v1::Task> large = leased->task();
  ASSERT_TRUE(large.ok());
  EXPECT_EQ(large->job_id(), big.id());
  EXPECT_EQ(large->attempt(), 1);
  EXPECT_TRUE(Job(big.id()).waiting_reason().empty());
  // A worker that registered with enough and still refuses: an ordinary failure.
  refuse.set_task_id(large->task_id());
  refuse.set_lease_token(large->lease_token());
  ASSERT_TRUE(env_.scheduler.FailTask(refuse).ok());
  EXPECT_EQ(Job(big.id()).attempts(), 1);
}

TEST_F(SchedulerTest, ReportEventsAssignsSequencesAndPublishes) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  std::vector<int64_t> published;
  env_.bus.Subscribe(job.id(), [&](int64_t seq) { published.push_back(seq); });
  v1::ReportEventsRequest report;
  report.set_task_id(task->task_id());
  report.set_lease_token(task->lease_token());
  report.add_events()->mutable_log()->set_message("loading");
  report.add_events()->mutable_metric()->set_name("sparsity");
  report.mutable_events(0)->set_sequence(99);  // ignored
  ASSERT_TRUE(env_.scheduler.ReportEvents(report).ok());
  auto events = Events(job.id());
  ASSERT_EQ(events.size(), 4u);  // QUEUED, RUNNING, log, metric
  EXPECT_EQ(events[2].sequence(), 3);
  EXPECT_EQ(events[2].log().message(), "loading");
  EXPECT_EQ(events[3].sequence(), 4);
  EXPECT_THAT(published, ::testing::ElementsAre(4));

  report.add_events()->mutable_state()->set_to(v1::SUCCEEDED);
  absl::Status forged = env_.scheduler.ReportEvents(report);
  EXPECT_EQ(forged.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(forged.message(), HasSubstr("events[2]"));
}

TEST_F(SchedulerTest, LongPollIsWokenByNotifyWorkAvailable) {
  std::string w = env_.Worker();
  LeaseResult result;
  v1::LeaseTaskRequest req;
  req.set_worker_id(w);
  req.set_wait_ms(20000);
  int64_t handle = env_.scheduler.LeaseTask(req, result.Callback());
  EXPECT_NE(handle, 0);
  EXPECT_EQ(result.Calls(), 0);
  v1::Job job = env_.Submit();  // Submit calls NotifyWorkAvailable
  ASSERT_EQ(result.Calls(), 1);
  absl::MutexLock lock(&result.mu);
  ASSERT_TRUE(result.result.ok()) << result.result.status();
  EXPECT_EQ(result.result->task().job_id(), job.id());
}

TEST_F(SchedulerTest, LongPollTimesOutOnTick) {
  std::string w = env_.Worker();
  LeaseResult result;
  v1::LeaseTaskRequest req;
  req.set_worker_id(w);
  req.set_wait_ms(5000);
  EXPECT_NE(env_.scheduler.LeaseTask(req, result.Callback()), 0);
  env_.now += 4999;
  env_.scheduler.Tick();
  EXPECT_EQ(result.Calls(), 0);
  env_.now += 1;
  env_.scheduler.Tick();
  ASSERT_EQ(result.Calls(), 1);
  absl::MutexLock lock(&result.mu);
  ASSERT_TRUE(result.result.ok());
  EXPECT_FALSE(result.result->has_task());
}

TEST_F(SchedulerTest, CancelWaitAnswersCancelledOnce) {
  std::string w = env_.Worker();
  LeaseResult result;
  v1::LeaseTaskRequest req;
  req.set_worker_id(w);
  req.set_wait_ms(5000);
  int64_t handle = env_.scheduler.LeaseTask(req, result.Callback());
  env_.scheduler.CancelWait(handle);
  env_.scheduler.CancelWait(handle);
  v1::Job job = env_.Submit();
  ASSERT_EQ(result.Calls(), 1);
  {
    absl::MutexLock lock(&result.mu);
    EXPECT_EQ(result.result.status().code(), absl::StatusCode::kCancelled);
  }
  EXPECT_EQ(env_.State(job.id()), v1::QUEUED);  // nobody took it
}

TEST_F(SchedulerTest, SilentWorkersAreDisconnected) {
  std::string w = env_.Worker();
  EXPECT_EQ(env_.metrics.workers_connected().Value(), 1);
  env_.now += JobsEnv::kWorkerTimeout + 1;
  env_.scheduler.Tick();
  EXPECT_EQ(env_.metrics.workers_connected().Value(), 0);
  EXPECT_EQ(env_.Lease(w).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SchedulerTest, RestartedSchedulerReadmitsWorkerHoldingALease) {
  std::string w = env_.Worker();
  v1::Job job = env_.Submit();
  auto task = env_.Lease(w);
  ASSERT_TRUE(task.ok());
  // A new scheduler on the same store knows no workers, as after a restart.
  Scheduler restarted(*env_.store, env_.bus, env_.metrics, env_.Options(200));
  auto hb = restarted.Heartbeat(Beat(w, *task));
  ASSERT_TRUE(hb.ok()) << hb.status();
  EXPECT_FALSE(hb->cancel());
  EXPECT_EQ(env_.metrics.workers_busy().Value(), 1);
  v1::CompleteTaskRequest done;
  done.set_task_id(task->task_id());
  done.set_lease_token(task->lease_token());
  ASSERT_TRUE(restarted.CompleteTask(done).ok());
  EXPECT_EQ(env_.State(job.id()), v1::SUCCEEDED);
}

TEST_F(SchedulerTest, ConcurrentLeasesHandEachJobOutOnce) {
  constexpr int kJobs = 12;
  constexpr int kThreads = 4;
  for (int i = 0; i < kJobs; ++i) env_.Submit();
  std::vector<std::string> workers;
  for (int t = 0; t < kThreads; ++t) workers.push_back(env_.Worker());
  absl::Mutex mu;
  std::vector<std::string> leased;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (true) {
        auto task = env_.Lease(workers[t]);
        ASSERT_TRUE(task.ok()) << task.status();
        if (task->job_id().empty()) return;
        absl::MutexLock lock(&mu);
        leased.push_back(task->job_id());
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> unique(leased.begin(), leased.end());
  EXPECT_EQ(leased.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(unique.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(env_.metrics.task_attempts().Value(), kJobs);
}

TEST(SchedulerThreadTest, BackgroundTickAndStopAnswerWaiters) {
  JobsEnv env(/*tick_ms=*/5);
  std::string w = env.Worker();
  v1::LeaseTaskRequest req;
  req.set_worker_id(w);
  req.set_wait_ms(1000);
  LeaseResult timed_out;
  env.scheduler.LeaseTask(req, timed_out.Callback());
  env.scheduler.Start();
  env.now += 1000;  // the background thread's next Tick expires the wait
  ASSERT_TRUE(timed_out.Wait(absl::Seconds(10)));

  LeaseResult pending;
  req.set_wait_ms(30000);
  env.scheduler.LeaseTask(req, pending.Callback());
  env.scheduler.Stop();
  ASSERT_EQ(pending.Calls(), 1);
  absl::MutexLock lock(&pending.mu);
  ASSERT_TRUE(pending.result.ok());
  EXPECT_FALSE(pending.result->has_task());
}

}  // namespace
}  // namespace compressd
